"""The projection runner and the KPI projection against real Postgres and NATS JetStream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.bus import Bus, PartitionMismatch
from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.eventstore import EventStore
from gatherly.outbox import Relay
from gatherly.partition import Partition
from gatherly.projection import ProjectionRunner
from gatherly.projector import Projector
from gatherly.replay import replay
from gatherly.settings import Settings, to_libpq_url
from gatherly.settlement import Received
from services.kpi.projections import CHANNEL, GENERIC_PLAN_FACTS, KpiProjection
from services.kpi.queries.content import views_total
from services.kpi.queries.members import members_kpi
from services.kpi.queries.window import Window
from services.kpi.queries.zones import ensure_zone
from tests.helpers import (
    eventually,
    joined,
    left,
    running,
    stream_deliveries,
    stream_envelopes,
)
from tests.integration.test_kpi_support import publish

STORE = EventStore(source="/gatherly/members")


async def write_members(
    settings: Settings, joins: int, leaves: int, communities: tuple[str, ...] = ("c1",)
) -> None:
    """`joins` members in each community, the first `leaves` of each leaving again."""
    engine = create_engine(settings.database, "members")
    streams = [(community, str(uuid.uuid4())) for _ in range(joins) for community in communities]
    for community, stream in streams:
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=stream, community_id=community,
                               expected_version=0, events=[joined()])
    for community, stream in streams[: leaves * len(communities)]:
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=stream, community_id=community,
                               expected_version=1, events=[left()])
    relay = Relay(settings, "members", engine)
    async with running(relay):
        await eventually(lambda: _published(relay, (joins + leaves) * len(communities)))
    await engine.dispose()


async def restream(settings: Settings, envelopes: list[Envelope]) -> None:
    """The stream emptied, then `envelopes` published on it again in this order."""
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="reorder")
    await bus.delete_stream()
    await bus.ensure_stream(duplicate_window=60)
    await bus.close()
    await publish(settings, envelopes)


async def _published(relay: Relay, count: int) -> bool:
    return relay.published >= count


async def today_counts(settings: Settings, community: str = "c1") -> tuple[int, int, int]:
    engine = create_engine(settings.database, "kpi")
    today = datetime.now(UTC).date()
    await ensure_zone(engine, community, "UTC")  # as the KPI API does before it answers
    async with engine.connect() as conn:
        day = await members_kpi(conn, community, Window(today, today, "day", "UTC"))
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
    first = await runner.apply_batch(Received.of(deliveries))
    again = await runner.apply_batch(Received.of(deliveries))
    await engine.dispose()
    assert (len(first.applied), len(again.applied), len(again.duplicates)) == (10, 0, 10)
    assert await today_counts(settings) == (10, 0, 10)


async def test_a_redelivered_view_counts_once_and_keeps_no_version(settings: Settings) -> None:
    now = datetime.now(UTC)
    await publish(settings, [
        Envelope(id=f"e{i}", source="/test", type="gatherly.content.viewed", subject=f"view{i}",
                 community_id="c1", sequence=1, time=now,
                 data={"content_id": "p1", "channel": "telegram", "count": 1,
                       "viewed_at": now.isoformat()})
        for i in range(5)
    ])
    deliveries = await stream_deliveries(settings)
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    _, runner.generation = await runner.checkpoint()
    await runner.apply_batch(Received.of(deliveries))
    again = await runner.apply_batch(Received.of(deliveries))
    await ensure_zone(engine, "c1", "UTC")
    async with engine.connect() as conn:
        kept = await conn.scalar(text("SELECT count(*) FROM projection_applied"))
        total = await views_total(conn, "c1", Window(now.date(), now.date(), "day", "UTC"))
    await engine.dispose()
    assert len(again.applied) == 5, "a view is applied as it comes, a redelivery too"
    assert (kept, total) == (0, 5)


async def test_a_leave_delivered_before_its_join_waits_for_it(settings: Settings) -> None:
    await write_members(settings, joins=1, leaves=1)
    join, leave = await stream_deliveries(settings)
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    _, runner.generation = await runner.checkpoint()
    early = await runner.apply_batch(Received.of([leave]))
    assert (len(early.applied), len(early.deferred)) == (0, 1)
    async with engine.connect() as conn:
        settled = await conn.scalar(text("SELECT stream_seq FROM projection_checkpoint"))
    assert settled == 0, "the checkpoint must not pass a deferred message"
    assert len((await runner.apply_batch(Received.of([join]))).applied) == 1
    assert len((await runner.apply_batch(Received.of([leave]))).applied) == 1
    async with engine.connect() as conn:
        settled = await conn.scalar(text("SELECT stream_seq FROM projection_checkpoint"))
    await engine.dispose()
    assert settled == 2
    assert await today_counts(settings) == (1, 1, 0)


class CommitSetting:
    """A projection that only notes the commit durability its batch's transaction runs with."""

    name = "commit-setting"
    schema = "kpi"
    single_event_types: frozenset[str] = frozenset()
    fact_types: frozenset[str] | None = None  # every fact

    def __init__(self, durable_commits: bool) -> None:
        self.durable_commits = durable_commits
        self.seen: list[str] = []

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        self.seen.append(str(await conn.scalar(text("SHOW synchronous_commit"))))

    async def reset(self, conn: AsyncConnection) -> None:
        return None


@pytest.mark.parametrize("durable", [True, False])
async def test_a_batch_waits_for_the_disk_only_when_its_projection_asks(
    settings: Settings, durable: bool
) -> None:
    await write_members(settings, joins=1, leaves=0)
    engine = create_engine(settings.database, "kpi")
    projection = CommitSetting(durable)
    runner = ProjectionRunner(settings, projection, engine)
    _, runner.generation = await runner.checkpoint()
    await runner.apply_batch(Received.of(await stream_deliveries(settings)))
    async with engine.connect() as conn:  # the setting was the batch's own
        after = await conn.scalar(text("SHOW synchronous_commit"))
    await engine.dispose()
    assert (projection.seen, after) == (["on" if durable else "off"], "on")


async def test_the_kpi_projection_tells_each_community_of_its_batch_at_commit(
    settings: Settings,
) -> None:
    await write_members(settings, joins=2, leaves=0, communities=("c1", "c2"))
    told: list[str] = []
    listener = await asyncpg.connect(to_libpq_url(settings.database))
    await listener.add_listener(CHANNEL, lambda *args: told.append(args[3]))
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    _, runner.generation = await runner.checkpoint()
    try:
        await runner.apply_batch(Received.of(await stream_deliveries(settings)))
        await eventually(lambda: _told(told, 2))
    finally:
        await listener.close()
        await engine.dispose()
    assert sorted(told) == ["c1", "c2"]


class PlansSeen(KpiProjection):
    """The KPI projection, noting the plan cache mode its batch's statements ran with."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def apply(self, conn: AsyncConnection, batch: list[Envelope]) -> None:
        await super().apply(conn, batch)
        self.seen.append(str(await conn.scalar(text("SHOW plan_cache_mode"))))


async def test_a_small_kpi_batch_runs_on_generic_plans_and_a_large_one_does_not(
    settings: Settings,
) -> None:
    await write_members(settings, joins=GENERIC_PLAN_FACTS + 2, leaves=0)
    deliveries = await stream_deliveries(settings)
    engine = create_engine(settings.database, "kpi")
    projection = PlansSeen()
    runner = ProjectionRunner(settings, projection, engine)
    _, runner.generation = await runner.checkpoint()
    await runner.apply_batch(Received.of(deliveries[:1]))
    await runner.apply_batch(Received.of(deliveries[1:]))
    await engine.dispose()
    assert projection.seen == ["force_generic_plan", "auto"]
    assert await today_counts(settings) == (GENERIC_PLAN_FACTS + 2, 0, GENERIC_PLAN_FACTS + 2)


async def _told(told: list[str], count: int) -> bool:
    return len(told) >= count


async def test_a_message_waiting_for_redelivery_is_never_acknowledged_away(
    settings: Settings,
) -> None:
    """One cumulative ack settles a batch; a deferred message after it must still come back."""
    await write_members(settings, joins=2, leaves=1)
    first_join, second_join, leave = await stream_envelopes(settings)
    await restream(settings, [leave, first_join, second_join])  # the leave first: deferred
    reordered = settings.model_copy(update={"projection_batch_size": 1})
    engine = create_engine(reordered.database, "kpi")
    runner = ProjectionRunner(reordered, KpiProjection(), engine)
    async with running(runner):
        await eventually(lambda: _applied(runner, 3))
        assert not runner.redelivering
    await engine.dispose()
    assert await today_counts(settings) == (2, 1, 1)


async def test_messages_waiting_for_their_predecessors_never_stall_the_consumer(
    settings: Settings,
) -> None:
    """Five leaves ahead of their joins, one message a batch: each leave waits unacknowledged,
    and JetStream sends nothing new past `max_ack_pending` unacknowledged messages. Were that
    four (four batches), the joins would never come and the leaves would wait forever."""
    await write_members(settings, joins=5, leaves=5)
    envelopes = await stream_envelopes(settings)
    await restream(settings, envelopes[5:] + envelopes[:5])  # every leave before every join
    one_a_batch = settings.model_copy(update={"projection_batch_size": 1})
    engine = create_engine(one_a_batch.database, "kpi")
    runner = ProjectionRunner(one_a_batch, KpiProjection(), engine)
    async with running(runner):
        await eventually(lambda: _applied(runner, 10))
    await engine.dispose()
    assert await today_counts(settings) == (5, 5, 0)


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


COMMUNITIES = tuple(f"c{i}" for i in range(12))


async def partition_the_stream(settings: Settings, count: int) -> Settings:
    """The settings with `count` partitions, and the (still empty) stream partitioned so."""
    partitioned = settings.model_copy(update={"stream_partitions": count})
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="test")
    try:
        await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds,
                                partitions=count)
    finally:
        await bus.close()
    return partitioned


async def test_partitions_split_the_communities_and_count_each_fact_once(
    settings: Settings,
) -> None:
    settings = await partition_the_stream(settings, 4)
    await write_members(settings, joins=5, leaves=2, communities=COMMUNITIES)
    engine = create_engine(settings.database, "kpi", pool_size=5)
    projector = Projector(settings, KpiProjection(), engine)
    async with running(projector):
        await eventually(lambda: _projected(projector, 7 * len(COMMUNITIES)))
        per_partition = [runner.applied for runner in projector.runners]
        live = [await today_counts(settings, c) for c in COMMUNITIES]
        await replay(settings, KpiProjection(), show=False)  # rebuilt by the live runners
        rebuilt = [await today_counts(settings, c) for c in COMMUNITIES]
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT partition, stream_seq FROM projection_checkpoint"
                                       " WHERE projection = 'kpi' ORDER BY partition"))
        checkpoints = {row.partition: row.stream_seq for row in rows}
    await engine.dispose()
    assert live == rebuilt == [(5, 2, 3)] * len(COMMUNITIES)
    assert sum(per_partition) == 7 * len(COMMUNITIES)
    assert sum(1 for applied in per_partition if applied) > 1, "one partition took everything"
    assert set(checkpoints) == {"0/4", "1/4", "2/4", "3/4"}


async def _projected(projector: Projector, count: int) -> bool:
    return projector.applied >= count


async def test_a_partition_count_that_disagrees_with_the_stream_is_refused(
    settings: Settings,
) -> None:
    await write_members(settings, joins=2, leaves=0)  # the stream now holds unpartitioned facts
    partitioned = settings.model_copy(update={"stream_partitions": 4})
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(partitioned, KpiProjection(), engine, partition=Partition(1, 4))
    try:
        with pytest.raises(PartitionMismatch):
            await runner.run()
    finally:
        await engine.dispose()


class NumberKeeper:
    """Stores each fact's number as an `integer`: a number past 2^31 is data Postgres refuses."""

    name = "number-keeper"
    schema = "kpi"
    single_event_types: frozenset[str] = frozenset()
    fact_types: frozenset[str] | None = None
    durable_commits = False

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS kept_numbers (id text PRIMARY KEY,"
                                " n integer)"))
        for event in events:
            await conn.execute(text("INSERT INTO kept_numbers VALUES (:id, CAST(:n AS bigint))"),
                               {"id": event.id, "n": event.data["n"]})

    async def reset(self, conn: AsyncConnection) -> None:
        return None


async def test_a_fact_whose_data_postgres_refuses_is_poison_and_the_rest_are_applied(
    settings: Settings,
) -> None:
    now = datetime.now(UTC)

    def fact(n: int) -> Envelope:
        return Envelope(id=str(uuid.uuid4()), source="/test", type="gatherly.member.joined",
                        subject=str(uuid.uuid4()), community_id="c1", sequence=1, time=now,
                        data={"n": n})

    facts = [fact(n) for n in (1, 2, 3, 2**40, 5, 6, 7)]
    await publish(settings, facts)
    engine = create_engine(settings.database, "kpi")
    runner = ProjectionRunner(settings, NumberKeeper(), engine)
    async with running(runner):
        await eventually(lambda: _applied(runner, 6))
        await publish(settings, [fact(8)])  # and the projection goes on
        await eventually(lambda: _applied(runner, 7))
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT n FROM kept_numbers ORDER BY n"))).scalars().all()
        settled = await conn.scalar(text("SELECT stream_seq FROM projection_checkpoint"
                                         " WHERE projection = 'number-keeper'"))
    await engine.dispose()
    assert kept == [1, 2, 3, 5, 6, 7, 8]
    assert settled == 8  # the poison message is settled too, not waited for
