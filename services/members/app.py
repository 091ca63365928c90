"""Wiring for the members service: `create_app(settings)` builds it; nothing connects at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gatherly.db import create_engine
from gatherly.eventstore import EventStore
from gatherly.settings import Settings
from gatherly.web import Problem, install_service_basics, problem_response
from services.members.api import router
from services.members.domain import DomainError
from services.members.handlers import MemberHandlers, MemberNotFound, VersionMismatch

SCHEMA = "members"


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="Gatherly members", version="1", lifespan=lifespan)
    app.state.engine = engine
    app.state.handlers = MemberHandlers(engine, EventStore(source=f"/gatherly/{SCHEMA}"))
    install_service_basics(app, settings, engine)
    _install_domain_errors(app)
    app.include_router(router)
    return app


def _install_domain_errors(app: FastAPI) -> None:
    async def on_domain(request: Request, error: Exception) -> JSONResponse:
        return problem_response(Problem(422, "Not allowed", str(error)), request.url.path)

    async def on_missing(request: Request, error: Exception) -> JSONResponse:
        return problem_response(Problem(404, "Not Found", f"no member {error}"), request.url.path)

    async def on_stale(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, VersionMismatch)
        problem = Problem(
            412, "Precondition Failed", str(error), headers={"ETag": f'"{error.current}"'}
        )
        return problem_response(problem, request.url.path)

    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(MemberNotFound, on_missing)
    app.add_exception_handler(VersionMismatch, on_stale)
