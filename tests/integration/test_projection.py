"""The projection runner and the KPI projection against real Postgres and NATS JetStream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.eventstore import EventStore
from gatherly.outbox import Relay
from gatherly.projection import ProjectionRunner
from gatherly.replay import replay
from gatherly.settings import Settings
from services.kpi.projections import KpiProjection
from services.kpi.queries.members import members_kpi
from services.kpi.queries.window import Window
from tests.helpers import eventually, joined, left, running, stream_deliveries

STORE = EventStore(source="/gatherly/members")


async def write_members(settings: Settings, joins: int, leaves: int) -> None:
    engine = create_engine(settings.database, "members")
    streams = [str(uuid.uuid4()) for _ in range(joins)]
    for stream in streams:
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=0,
                               events=[joined()])
    for stream in streams[:leaves]:
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=1,
                               events=[left()])
    relay = Relay(settings, "members", engine)
    async with running(relay):
        await eventually(lambda: _published(relay, joins + leaves))
    await engine.dispose()


async def _published(relay: Relay, count: int) -> bool:
    return relay.published >= count


async def today_counts(settings: Settings) -> tuple[int, int, int]:
    engine = create_engine(settings.database, "kpi")
    today = datetime.now(UTC).date()
    async with engine.connect() as conn:
        day = await members_kpi(conn, "c1", Window(today, today, "day", "UTC"))
    await engine.dispose()
    return day["joined"], day["left"], day["total"]


async def test_the_projection_counts_every_join_and_leave_once(settings: Settings) -> None:
    await write_members(settings, joins=40, leaves=15)
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    async with running(runner):
        await eventually(lambda: _applied(runner, 55))
    await engine.dispose()
    assert await today_counts(settings) == (40, 15, 25)


async def _applied(runner: ProjectionRunner, count: int) -> bool:
    return runner.applied >= count


async def test_a_redelivered_batch_counts_once(settings: Settings) -> None:
    await write_members(settings, joins=10, leaves=0)
    deliveries = await stream_deliveries(settings)
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    _, runner.generation = await runner.checkpoint()
    first = await runner.apply_batch(deliveries)
    again = await runner.apply_batch(deliveries)
    await engine.dispose()
    assert (len(first.applied), len(again.applied), len(again.duplicates)) == (10, 0, 10)
    assert await today_counts(settings) == (10, 0, 10)


async def test_a_leave_delivered_before_its_join_waits_for_it(settings: Settings) -> None:
    await write_members(settings, joins=1, leaves=1)
    join, leave = await stream_deliveries(settings)
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    _, runner.generation = await runner.checkpoint()
    early = await runner.apply_batch([leave])
    assert (len(early.applied), len(early.deferred)) == (0, 1)
    async with engine.connect() as conn:
        settled = await conn.scalar(text("SELECT stream_seq FROM projection_checkpoint"))
    assert settled == 0, "the checkpoint must not pass a deferred message"
    assert len((await runner.apply_batch([join])).applied) == 1
    assert len((await runner.apply_batch([leave])).applied) == 1
    async with engine.connect() as conn:
        settled = await conn.scalar(text("SELECT stream_seq FROM projection_checkpoint"))
    await engine.dispose()
    assert settled == 2
    assert await today_counts(settings) == (1, 1, 0)


async def test_a_replayed_projection_equals_the_live_one(settings: Settings) -> None:
    await write_members(settings, joins=30, leaves=12)
    engine = create_engine(settings.database, "kpi")
    live = ProjectionRunner(settings, KpiProjection(), engine)
    async with running(live):
        await eventually(lambda: _applied(live, 42))
        before = await today_counts(settings)
        await replay(settings, KpiProjection(), show=False)  # rebuilt by the live runner
        rebuilt_live = await today_counts(settings)
    await replay(settings, KpiProjection(), show=False)  # rebuilt by the replay command itself
    await engine.dispose()
    assert before == rebuilt_live == await today_counts(settings) == (30, 12, 18)
