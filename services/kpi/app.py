"""Wiring for the KPI query API; the projector runs apart, as `gatherly project kpi`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gatherly.db import create_engine
from gatherly.settings import Settings
from gatherly.web import install_service_basics
from services.kpi.api import router
from services.kpi.live import Notifier
from services.kpi.projections import SCHEMA
from services.kpi.queries.summary import Summaries

# A question's window is bound as parameters, and after five runs of a statement Postgres may
# keep a generic plan that ignores them: at 1M members reactions took 36 ms with it, 23 ms
# planned for each question's values (docs/benchmarks.md).
PLAN_EACH_QUESTION = {"plan_cache_mode": "force_custom_plan"}
POOL_SIZE = 10  # and as many again as overflow (gatherly.db.create_engine)


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings.database, SCHEMA, pool_size=POOL_SIZE,
                           postgres_settings=PLAN_EACH_QUESTION)
    # Questions only read: their statements run without BEGIN and ROLLBACK round trips. In a
    # READ COMMITTED transaction each statement took its own snapshot anyway, so the answers
    # are the same; the summary opens its own REPEATABLE READ transaction (one moment).
    questions = engine.execution_options(isolation_level="AUTOCOMMIT")
    notifier = Notifier(settings.database)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await notifier.close()
        await engine.dispose()

    app = FastAPI(title="Gatherly KPIs", version="1", lifespan=lifespan)
    app.state.engine = questions
    app.state.summaries = Summaries(questions, pool_capacity=2 * POOL_SIZE)
    app.state.notifier = notifier
    install_service_basics(app, settings, engine)
    app.include_router(router)
    return app
