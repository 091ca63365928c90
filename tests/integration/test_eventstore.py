"""The event store against real Postgres: expected versions, stream reads, commit order."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gatherly.db import create_engine
from gatherly.eventstore import START, ConcurrencyConflict, EventStore
from gatherly.settings import Settings
from tests.helpers import joined, left


@pytest.fixture
async def engine(settings: Settings):  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database, "members")
    yield engine
    await engine.dispose()


STORE = EventStore(source="/gatherly/members")


async def test_append_then_read_stream_in_version_order(engine) -> None:  # type: ignore[no-untyped-def]
    stream = str(uuid.uuid4())
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=0,
                           events=[joined()])
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=1,
                           events=[left()])
    async with engine.connect() as conn:
        events = await STORE.read_stream(conn, stream)
    assert [e.type for e in events] == ["gatherly.member.joined", "gatherly.member.left"]
    assert [e.sequence for e in events] == [1, 2]
    assert events[0].data["channel"] == "telegram"


async def test_redacting_a_stream_keeps_only_the_named_fields_of_its_events(engine) -> None:  # type: ignore[no-untyped-def]
    erased, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with engine.begin() as conn:
        for stream in (erased, other):
            await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=0,
                               events=[joined()])
            await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=1,
                               events=[left()])
        await STORE.redact(conn, erased, {"gatherly.member.joined": frozenset({"channel"})})
    async with engine.connect() as conn:
        redacted = await STORE.read_stream(conn, erased)
        untouched = await STORE.read_stream(conn, other)
    assert [e.data for e in redacted] == [{"channel": "telegram"}, {}]
    assert set(untouched[0].data) == {"channel", "joined_at"} and "left_at" in untouched[1].data


async def test_two_writers_with_the_same_expected_version_one_wins(engine) -> None:  # type: ignore[no-untyped-def]
    stream = str(uuid.uuid4())
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=0,
                           events=[joined()])
    barrier = asyncio.Barrier(2)

    async def write() -> str:
        try:
            async with engine.begin() as conn:
                await STORE.stream_version(conn, stream)
                await barrier.wait()
                await STORE.append(conn, stream_id=stream, community_id="c1",
                                   expected_version=1, events=[left()])
            return "won"
        except ConcurrencyConflict:
            return "conflict"

    outcomes = sorted(await asyncio.gather(write(), write()))
    assert outcomes == ["conflict", "won"]
    async with engine.connect() as conn:
        assert await STORE.stream_version(conn, stream) == 2


async def test_a_stale_expected_version_is_a_conflict(engine) -> None:  # type: ignore[no-untyped-def]
    stream = str(uuid.uuid4())
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=0,
                           events=[joined()])
    with pytest.raises(ConcurrencyConflict):
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=0,
                               events=[joined()])
    with pytest.raises(ConcurrencyConflict):  # a version from the future would leave a gap
        async with engine.begin() as conn:
            await STORE.append(conn, stream_id=stream, community_id="c1", expected_version=5,
                               events=[left()])


async def test_read_all_never_skips_a_transaction_that_commits_late(engine) -> None:  # type: ignore[no-untyped-def]
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    slow = await engine.connect()
    slow_tx = await slow.begin()
    # The slow writer takes its transaction id (and position) first, but commits last.
    await STORE.append(slow, stream_id=early, community_id="c1", expected_version=0,
                       events=[joined()])
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=late, community_id="c1", expected_version=0,
                           events=[joined()])
    async with engine.connect() as conn:
        visible = await STORE.read_all(conn, START, 100)
    assert visible == [], "a reader must not pass a still-open transaction"

    await slow_tx.commit()
    await slow.close()
    async with engine.connect() as conn:
        visible = await STORE.read_all(conn, START, 100)
    assert [e.subject for _, e in visible] == [early, late]
    positions = [p for p, _ in visible]
    assert positions == sorted(positions)
    async with engine.connect() as conn:
        assert await STORE.read_all(conn, positions[-1], 100) == []
