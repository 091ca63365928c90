"""The live KPI stream over a real uvicorn server on loopback: a fact reaches its community's
stream through the projection's NOTIFY (the fallback re-query is pushed out of reach), another
community's stream hears nothing of it, and a client that goes away leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.projection import ProjectionRunner
from gatherly.settings import Settings
from services.kpi import api, live
from services.kpi.app import create_app
from services.kpi.projections import KpiProjection
from tests.conftest import free_port
from tests.helpers import eventually, running
from tests.integration.test_kpi_support import History, publish

# Far beyond every wait below: whatever arrives came through the notification.
NO_FALLBACK = 120.0
ARRIVAL = 10.0  # a bound, not the promise; the latency is printed (`-s`) and in docs/kpi.md


@dataclass
class Pushed:
    """One SSE message: an `event: kpis` with its data, or a keep-alive comment (data None)."""

    data: dict[str, Any] | None
    received: float


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app under uvicorn on a free loopback port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await eventually(started, within=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def subscribed(base: str, community: str) -> AsyncIterator[asyncio.Queue[Pushed]]:
    """A client on the community's stream; what it receives lands in the queue."""
    inbox: asyncio.Queue[Pushed] = asyncio.Queue()
    headers = {"X-Gatherly-Community": community, "X-Gatherly-Scopes": "read"}
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=None) as client,
        client.stream("GET", f"/v1/communities/{community}/kpis/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = asyncio.create_task(_read(response, inbox))
        try:
            yield inbox
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader


async def _read(response: httpx.Response, inbox: asyncio.Queue[Pushed]) -> None:
    event, data = None, None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            inbox.put_nowait(Pushed(None, time.monotonic()))
        elif line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and event == "kpis" and data is not None:
            inbox.put_nowait(Pushed(json.loads(data), time.monotonic()))
            event, data = None, None


async def next_push(inbox: asyncio.Queue[Pushed]) -> Pushed:
    return await asyncio.wait_for(inbox.get(), ARRIVAL)


def join_now(community: str, member: str, channel: str) -> History:
    now = datetime.now(UTC)
    history = History(community)
    history.add("member.joined", member, now, channel=channel, joined_at=now)
    return history


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "FALLBACK_SECONDS", NO_FALLBACK)


@pytest.mark.usefixtures("no_fallback")
async def test_a_fact_is_pushed_to_its_own_communitys_stream_only(settings: Settings) -> None:
    app = create_app(settings)
    engine = create_engine(settings.database, "kpi", pool_size=2)
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    try:
        async with (
            running(runner),
            serving(app) as base,
            subscribed(base, "c1") as c1,
            subscribed(base, "c2") as c2,
        ):
            for inbox, community in ((c1, "c1"), (c2, "c2")):
                first = (await next_push(inbox)).data
                assert first is not None and first["community_id"] == community
                assert first["members"]["total"] == 0

            published = time.monotonic()
            await publish(settings, join_now("c1", "m1", "telegram").facts)
            pushed = await next_push(c1)
            assert pushed.data is not None
            assert pushed.data["community_id"] == "c1"
            assert pushed.data["members"]["total"] == pushed.data["members"]["joined"] == 1
            assert pushed.data["top_channel"] == "telegram"
            print(f"c1's join pushed {pushed.received - published:.3f} s after publishing")

            # c1's notification came before c2's own fact: had it woken c2's stream, a
            # keep-alive comment (an unchanged re-query) would come first.
            await publish(settings, join_now("c2", "m1", "vk").facts)
            pushed = await next_push(c2)
            assert pushed.data is not None, "c2's stream was woken by c1's fact"
            assert pushed.data["community_id"] == "c2"
            assert pushed.data["members"]["total"] == 1
            assert pushed.data["top_channel"] == "vk"
            assert c1.empty() and c2.empty()
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("no_fallback")
async def test_a_stream_on_the_default_window_moves_on_at_midnight(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [datetime(2026, 3, 1, 23, 59, 55, tzinfo=UTC)]
    monkeypatch.setattr(api, "utc_now", lambda: clock[0])
    app = create_app(settings)
    engine = create_engine(settings.database, "kpi", pool_size=2)
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    try:
        async with running(runner), serving(app) as base, subscribed(base, "c1") as c1:
            first = await next_push(c1)
            assert first.data is not None and first.data["to"] == "2026-03-01"
            clock[0] += timedelta(seconds=10)  # 00:00:05 the next day
            history = History("c1")
            history.add("member.joined", "m1", clock[0], channel="vk", joined_at=clock[0])
            await publish(settings, history.facts)
            pushed = await next_push(c1)
            assert pushed.data is not None, "the stream still answers for the day before"
            assert (pushed.data["to"], pushed.data["members"]["total"]) == ("2026-03-02", 1)
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("no_fallback")
async def test_a_lost_listen_connection_is_reopened_and_nothing_is_missed(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = create_engine(settings.database, "kpi", pool_size=2)
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    try:
        async with serving(app) as base, subscribed(base, "c1") as c1:
            assert (await next_push(c1)).data is not None
            async with engine.connect() as conn:  # what a database restart does to it
                killed = await conn.scalar(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"))
            assert killed == 1
            # Woken by the loss: an unchanged re-query, on a new LISTEN connection.
            assert (await next_push(c1)).data is None
            async with running(runner):
                await publish(settings, join_now("c1", "m1", "email").facts)
                pushed = await next_push(c1)
            assert pushed.data is not None and pushed.data["members"]["total"] == 1
    finally:
        await engine.dispose()


async def test_a_client_that_goes_away_leaves_no_stream_behind(settings: Settings) -> None:
    app = create_app(settings)
    notifier: live.Notifier = app.state.notifier
    async with serving(app) as base:
        before = len(asyncio.all_tasks())
        for _ in range(3):  # one after another: nothing piles up
            async with subscribed(base, "c1") as inbox:
                assert (await next_push(inbox)).data is not None
                assert len(notifier.wakers["c1"]) == 1

        async def released() -> bool:
            return not notifier.wakers and len(asyncio.all_tasks()) <= before

        await eventually(released, within=5)
