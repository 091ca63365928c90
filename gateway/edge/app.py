"""The edge app: Traefik's forwardAuth target, communities and API keys, the one API document,
problem+json bodies for Traefik's own errors, and the answer for /v1 paths no service owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.edge import communities, errors, keys
from gateway.edge.auth_entry import AUTH_PATH, AuthEntry
from gateway.edge.forward_auth import ForwardAuth
from gateway.edge.key_cache import KeyCache
from gateway.edge.openapi import MergedDocument
from gateway.edge.ratelimit import Limit, RateLimiter
from gatherly.db import create_engine
from gatherly.idempotency import Idempotency
from gatherly.idempotency_store import IdempotencyStore
from gatherly.metrics import HttpMetrics, metrics_endpoint
from gatherly.registry import APPS
from gatherly.settings import Settings
from gatherly.web import (
    BodyLimit,
    Problem,
    database_check,
    install_health,
    install_problem_handlers,
    instrument,
)

SCHEMA = "edge"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def service_documents(settings: Settings) -> dict[str, str]:
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return {
        name: f"http://{host}:{getattr(settings, port_field)}/openapi.json"
        for name, (_, port_field) in APPS.items()
        if name != "edge"
    }


class EdgeApp(FastAPI):
    """The edge app, with `/auth` answered before the middleware stack (`auth_entry`)."""

    auth_entry: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.auth_entry is not None and scope["type"] == "http" and scope["path"] == AUTH_PATH:
            await self.auth_entry(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA, pool_size=5)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = EdgeApp(
        title="Gatherly edge", version="1", lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    default_limit = Limit(settings.key_rate_per_second, settings.key_rate_burst)
    app.state.engine = engine
    app.state.keys = KeyCache(engine, settings.key_cache_refresh_seconds, default_limit)
    install_problem_handlers(app)
    install_health(app, {"database": database_check(engine)})
    retention = timedelta(hours=settings.idempotency_retention_hours)
    app.add_middleware(Idempotency, store=IdempotencyStore(engine, retention))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: RED like every service's (`/auth` counts in `AuthEntry`).
    app.add_middleware(HttpMetrics)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    # The route every gateway request goes through: answered ahead of the stack.
    auth = ForwardAuth(admin_key, app.state.keys, RateLimiter())
    app.auth_entry = AuthEntry(auth)
    app.include_router(communities.router)
    app.include_router(keys.router)
    app.include_router(errors.router)
    _install_documents(app, settings)

    @app.api_route("/v1/{path:path}", methods=METHODS, include_in_schema=False)
    async def not_routed(path: str) -> None:
        raise Problem(404, "Not Found", f"no resource at /v1/{path}")

    instrument(app)
    return app


def _install_documents(app: FastAPI, settings: Settings) -> None:
    document = MergedDocument(app.openapi, service_documents(settings))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        merged: dict[str, Any] = await document.get()
        return JSONResponse(merged)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Gatherly API")
