"""Wiring for the members service: `create_app(settings)` builds it; nothing connects at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gatherly.db import create_engine
from gatherly.eventstore import EventStore
from gatherly.settings import Settings
from gatherly.web import Problem, install_service_basics, problem_response
from services.members import api, api_import, inbound
from services.members.domain import DomainError
from services.members.handlers import MemberHandlers, MemberNotFound
from services.members.importer import MemberImporter
from services.members.personal import ProfileError

SCHEMA = "members"
IMPORT_PATH_SUFFIX = "/members/import"
# Domain rules that are about one request field: their problems name it as `field` too.
FIELD_RULES = frozenset({"channel", "invited_by", "joined_at", "left_at", "rejoined_at"})


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="Gatherly members", version="1", lifespan=lifespan)
    store = EventStore(source=f"/gatherly/{SCHEMA}")
    app.state.engine = engine
    app.state.handlers = MemberHandlers(engine, store)
    app.state.importer = MemberImporter(engine, store)
    # A bulk import is read as a stream, never whole: it gets its own, larger limit.
    install_service_basics(
        app, settings, engine,
        larger_bodies={IMPORT_PATH_SUFFIX: settings.members_import_max_bytes},
    )
    _install_domain_errors(app)
    app.include_router(inbound.router)
    app.include_router(api_import.router)
    app.include_router(api.router)
    return app



def _install_domain_errors(app: FastAPI) -> None:
    async def on_domain(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        named: dict[str, Any] = {"field": error.rule} if error.rule in FIELD_RULES else {}
        problem = Problem(422, "Not allowed", str(error), rule=error.rule, **named)
        return problem_response(problem, request.url.path)

    async def on_profile(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProfileError)
        problem = Problem(422, "Invalid profile", str(error), field=error.field)
        return problem_response(problem, request.url.path)

    async def on_missing(request: Request, error: Exception) -> JSONResponse:
        return problem_response(Problem(404, "Not Found", f"no member {error}"), request.url.path)


    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(ProfileError, on_profile)
    app.add_exception_handler(MemberNotFound, on_missing)
