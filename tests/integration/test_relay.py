"""The outbox relay against real Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.bus import Bus
from gatherly.db import create_engine
from gatherly.eventstore import EventStore, Position
from gatherly.outbox import Relay, republish
from gatherly.settings import Settings
from tests.helpers import eventually, joined, left, running, stream_deliveries, stream_envelopes

STORE = EventStore(source="/gatherly/members")


async def append_member_life(engine, stream: str, community: str, late: float) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=stream, community_id=community, expected_version=0,
                           events=[joined()])
        await conn.execute(text("SELECT pg_sleep(:s)"), {"s": late})
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=stream, community_id=community, expected_version=1,
                           events=[left()])
        await conn.execute(text("SELECT pg_sleep(:s)"), {"s": late / 2})


async def test_late_committing_writers_reach_the_stream_exactly_once_in_order(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database, "members", pool_size=25)
    relay = Relay(settings, "members", engine)
    streams = [str(uuid.uuid4()) for _ in range(20)]
    async with running(relay):
        rng = random.Random(7)
        await asyncio.gather(
            *(append_member_life(engine, s, "c1", rng.uniform(0.0, 0.4)) for s in streams)
        )

        async def all_published() -> bool:
            return relay.published >= 40

        await eventually(all_published)
    envelopes = await stream_envelopes(settings)
    await engine.dispose()
    assert len(envelopes) == 40
    assert len({e.id for e in envelopes}) == 40
    versions: dict[str, list[int]] = defaultdict(list)
    for envelope in envelopes:
        versions[envelope.subject].append(envelope.sequence)
    assert versions == {s: [1, 2] for s in streams}


async def test_a_relay_that_lost_its_checkpoint_publishes_nothing_twice(settings: Settings) -> None:
    engine = create_engine(settings.database, "members")
    for _ in range(30):
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=str(uuid.uuid4()), community_id="c1",
                               expected_version=0, events=[joined()])
    first = Relay(settings, "members", engine)
    async with running(first):
        await eventually(lambda: _at_least(first, 30))
    async with engine.begin() as conn:  # as if it had crashed before saving the checkpoint
        await conn.execute(text("DELETE FROM relay_checkpoint"))
    second = Relay(settings, "members", engine)
    async with running(second):
        await eventually(lambda: _at_least(second, 30))
    await engine.dispose()
    envelopes = await stream_envelopes(settings)
    assert len(envelopes) == 30
    assert len({e.id for e in envelopes}) == 30


async def test_a_busy_relay_saves_its_checkpoint_once_idle_and_a_restart_goes_on_from_it(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"relay_checkpoint_seconds": 3600.0})
    engine = create_engine(settings.database, "members")
    first = Relay(settings, "members", engine)
    async with running(first):
        for _ in range(20):
            async with engine.begin() as conn:
                await STORE.append(conn, stream_id=str(uuid.uuid4()), community_id="c1",
                                   expected_version=0, events=[joined()])

        async def saved_all() -> bool:
            return await first.load_checkpoint() == (await _last_position(engine))

        await eventually(saved_all)  # idle, not an hour later
        assert first.published == 20
    second = Relay(settings, "members", engine)
    async with running(second):
        await asyncio.sleep(0.5)
    await engine.dispose()
    assert second.published == 0, "it starts after everything the first one published"


async def _last_position(engine: AsyncEngine) -> Position:
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT tx_id::text::bigint AS tx, position FROM events"
            " ORDER BY tx_id DESC, position DESC LIMIT 1"))).one()
    return Position(row.tx, row.position)


async def test_only_one_of_two_relays_publishes(settings: Settings) -> None:
    engine = create_engine(settings.database, "members")
    one, two = Relay(settings, "members", engine), Relay(settings, "members", engine)
    async with running(one), running(two):
        await asyncio.sleep(0.5)
        for _ in range(25):
            async with engine.begin() as conn:
                await STORE.append(conn, stream_id=str(uuid.uuid4()), community_id="c1",
                                   expected_version=0, events=[joined()])

        async def done() -> bool:
            return one.published + two.published >= 25

        await eventually(done)
        await asyncio.sleep(0.3)
    await engine.dispose()
    assert sorted([one.published, two.published]) == [0, 25]
    assert len(await stream_envelopes(settings)) == 25


async def test_messages_are_cloudevents_with_our_extensions(settings: Settings) -> None:
    engine = create_engine(settings.database, "members")
    stream = str(uuid.uuid4())
    async with engine.begin() as conn:
        [stored] = await STORE.append(conn, stream_id=stream, community_id="c1",
                                      expected_version=0, events=[joined("vk")])
    relay = Relay(settings, "members", engine)
    async with running(relay):
        await eventually(lambda: _at_least(relay, 1))
    await engine.dispose()
    [delivery] = await stream_deliveries(settings)
    event = JSONFormat().read(CloudEvent, delivery.payload)
    assert event.get_specversion() == "1.0"
    assert event.get_id() == stored.id
    assert event.get_type() == "gatherly.member.joined"
    assert event.get_source() == "/gatherly/members"
    assert event.get_subject() == stream
    assert event.get_extension("communityid") == "c1"
    assert event.get_extension("sequence") == "1"
    assert event.get_data() == {"channel": "vk", "joined_at": stored.data["joined_at"]}
    assert delivery.headers["Nats-Msg-Id"] == stored.id


async def _at_least(relay: Relay, count: int) -> bool:
    return relay.published >= count


async def test_republish_restores_a_stream_that_lost_messages(settings: Settings) -> None:
    engine = create_engine(settings.database, "members")
    for _ in range(20):
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=str(uuid.uuid4()), community_id="c1",
                               expected_version=0, events=[joined()])
    relay = Relay(settings, "members", engine)
    async with running(relay):
        await eventually(lambda: _at_least(relay, 20))
    await engine.dispose()
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="test")
    await bus.delete_stream()  # what an OS crash can do to messages not yet fsynced
    await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
    await bus.close()
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await republish(settings, "members", an_hour_ago) == 20
    assert await republish(settings, "members", an_hour_ago) == 20  # dropped as duplicates
    envelopes = await stream_envelopes(settings)
    assert len(envelopes) == 20 and len({e.id for e in envelopes}) == 20
    assert await republish(settings, "members", datetime.now(UTC) + timedelta(hours=1)) == 0


async def test_published_bytes_are_the_envelope_as_stored_in_compact_json(
    settings: Settings,
) -> None:
    """What the relay reads from the store and writes to the stream, byte for byte: the compact
    `json.dumps` of the stored event's CloudEvent (data in jsonb's key order, non-ASCII escaped),
    its id as Nats-Msg-Id and its traceparent as a header."""
    engine = create_engine(settings.database, "members")
    datas = [{"channel": "vk", "name": "Zoë 😀 東京", "quote": 'a "b" \\ c\n', "n": 10**20,
              "x": 0.1 + 0.2, "tiny": 1.5e-7, "deep": {"list": [1, None, True, "é"]}},
             {"b": 1, "aa": 2, "a": 3}, {}]
    async with engine.begin() as conn:
        for n, data in enumerate(datas):
            await conn.execute(text(
                "INSERT INTO events (id, stream_id, community_id, type, version, occurred_at,"
                " data, traceparent) VALUES (:id, :s, 'c1', 'gatherly.member.joined', 1,"
                " now() - make_interval(secs => :n), CAST(:data AS jsonb), :tp)"),
                {"id": str(uuid.uuid4()), "s": f"m{n}", "n": n, "data": json.dumps(data),
                 "tp": None if n else "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    async with engine.connect() as conn:
        stored = [e for n in range(len(datas)) for e in await STORE.read_stream(conn, f"m{n}")]
    relay = Relay(settings, "members", engine)
    async with running(relay):
        await eventually(lambda: _at_least(relay, len(datas)))
    await engine.dispose()
    deliveries = await stream_deliveries(settings)
    assert [d.payload for d in deliveries] == [
        json.dumps(e.to_cloudevent(), separators=(",", ":")).encode() for e in stored]
    assert [(d.headers["Nats-Msg-Id"], d.headers.get("traceparent")) for d in deliveries] == [
        (e.id, e.traceparent) for e in stored]


async def test_the_relay_reads_again_after_its_database_connections_were_cut(
    settings: Settings,
) -> None:
    """Its pooled connections gone (a restart, a proxy's idle timeout), the leader's kept: the
    relay's reads go to the driver connection under SQLAlchemy's, and a dead one must leave the
    pool, not fail every read until the pool recycles it (ten minutes)."""
    engine = create_engine(settings.database, "members")
    relay = Relay(settings, "members", engine)
    async with running(relay):
        await _append_joins(settings, 3)
        await eventually(lambda: _at_least(relay, 3))
        cutter = create_engine(settings.database, "members", pool_size=1)
        async with cutter.connect() as conn:
            await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"))
        await cutter.dispose()
        await _append_joins(settings, 3)
        await eventually(lambda: _at_least(relay, 6), within=10)
    await engine.dispose()
    assert len(await stream_envelopes(settings)) == 6


async def _append_joins(settings: Settings, count: int) -> None:
    """On an engine of its own, made for these appends."""
    engine = create_engine(settings.database, "members", pool_size=1)
    for _ in range(count):
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=str(uuid.uuid4()), community_id="c1",
                               expected_version=0, events=[joined()])
    await engine.dispose()
