"""Wiring for the engagement service: `create_app(settings)` builds it; nothing connects at
import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gatherly.collector import tune_collector
from gatherly.db import create_engine
from gatherly.eventstore import EventStore
from gatherly.settings import Settings
from gatherly.web import install_service_basics, problem_response
from services.engagement import api, api_people, inbound
from services.engagement.deps import problem_of
from services.engagement.domain import DomainError
from services.engagement.handlers import EngagementHandlers
from services.engagement.ingest import IngestHandlers

SCHEMA = "engagement"


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_collector()  # a batch makes a few objects per fact: see gatherly.collector
        yield
        await engine.dispose()

    app = FastAPI(title="Gatherly engagement", version="1", lifespan=lifespan)
    store = EventStore(source=f"/gatherly/{SCHEMA}")
    app.state.engine = engine
    app.state.handlers = EngagementHandlers(engine, store)
    app.state.ingest = IngestHandlers(engine, store)
    install_service_basics(app, settings, engine)
    _install_domain_errors(app)
    app.include_router(inbound.router)
    app.include_router(api.router)
    app.include_router(api_people.router)
    return app


def _install_domain_errors(app: FastAPI) -> None:
    async def on_domain(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        return problem_response(problem_of(error), request.url.path)


    app.add_exception_handler(DomainError, on_domain)
