"""Wiring for the inbound service: `create_app(settings)` builds it; nothing connects at import."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from gatherly.db import create_engine
from gatherly.settings import Settings
from gatherly.web import install_service_basics
from services.inbound import admin, api
from services.inbound.commands import ORDER
from services.inbound.dispatch import Dispatcher

SCHEMA = "inbound"


def owner_urls(settings: Settings) -> dict[str, str]:
    """Each owning service's base URL: configured, or its loopback port on this host."""
    return {
        owner: settings.inbound_service_urls.get(owner)
        or f"http://{settings.host}:{getattr(settings, f'{owner}_port')}"
        for owner in ORDER
    }


def create_app(
    settings: Settings, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None
) -> FastAPI:
    """`transports`: per owning service, to reach it in-process (tests) instead of over HTTP."""
    engine = create_engine(settings.database, SCHEMA, pool_size=5)
    dispatcher = Dispatcher(owner_urls(settings), transports)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await dispatcher.close()
        await engine.dispose()

    app = FastAPI(title="Gatherly inbound webhooks", version="1", lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    app.state.dispatcher = dispatcher
    install_service_basics(app, settings, engine)
    app.include_router(api.router)
    app.include_router(admin.router)
    return app
