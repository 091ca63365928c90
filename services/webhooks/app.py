"""Wiring for the webhooks API: `create_app(settings)` builds it; nothing connects at import.

The fan-out (`projection.py`, run by `gatherly project webhooks`) and the sender (`delivery.py`,
run by `gatherly work webhooks-delivery`) are separate processes over the same schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gatherly.db import create_engine
from gatherly.settings import Settings
from gatherly.web import Problem, install_service_basics, problem_response
from services.webhooks import api
from services.webhooks.domain import WebhookRuleError
from services.webhooks.handlers import SubscriptionNotFound, WebhookHandlers
from services.webhooks.projection import SCHEMA


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="Gatherly webhooks", version="1", lifespan=lifespan)
    app.state.engine = engine
    app.state.handlers = WebhookHandlers(engine, settings)
    install_service_basics(app, settings, engine)
    _install_domain_errors(app)
    app.include_router(api.router)
    return app


def _install_domain_errors(app: FastAPI) -> None:
    async def on_rule(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, WebhookRuleError)
        problem = Problem(422, "Invalid webhook", str(error), field=error.field, rule=error.rule)
        return problem_response(problem, request.url.path)

    async def on_missing(request: Request, error: Exception) -> JSONResponse:
        problem = Problem(404, "Not Found", f"no webhook {error}")
        return problem_response(problem, request.url.path)


    app.add_exception_handler(WebhookRuleError, on_rule)
    app.add_exception_handler(SubscriptionNotFound, on_missing)
