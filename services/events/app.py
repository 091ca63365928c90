"""Wiring for the events service: `create_app(settings)` builds it; nothing connects at import."""

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
from services.events import api, followups_api, inbound
from services.events.handlers import EventHandlers, EventNotFound
from services.events.state import DomainError

SCHEMA = "events"

# Rules the event's current state breaks (retrying later may succeed): 409. Others are bad input.
CONFLICTS = frozenset(
    {"transition", "registration_not_open", "already_registered", "event_cancelled",
     "followup_done"}
)
# Rules that are about one request field: their problems name it as `field` too.
FIELD_RULES = frozenset({"channel"})


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="Gatherly events", version="1", lifespan=lifespan)
    app.state.engine = engine
    app.state.handlers = EventHandlers(
        engine, EventStore(source=f"/gatherly/{SCHEMA}"), settings.followup_due_days
    )
    install_service_basics(app, settings, engine)
    _install_domain_errors(app)
    app.include_router(inbound.router)
    app.include_router(api.router)
    app.include_router(followups_api.router)
    return app


def _install_domain_errors(app: FastAPI) -> None:
    async def on_domain(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        status = 409 if error.rule in CONFLICTS else 422
        title = "Conflict" if status == 409 else "Not allowed"
        named: dict[str, Any] = {"field": error.rule} if error.rule in FIELD_RULES else {}
        return problem_response(Problem(status, title, str(error), rule=error.rule, **named),
                                request.url.path)

    async def on_missing(request: Request, error: Exception) -> JSONResponse:
        return problem_response(Problem(404, "Not Found", f"no event {error}"), request.url.path)


    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(EventNotFound, on_missing)
