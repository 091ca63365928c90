"""The event store's bulk path (COPY, from `COPY_FROM` events on) keeps the guarantees of a
plain append: contracts checked, the caller's transaction, the unique (stream, version) as the
conflict check, commit order for readers, the wake-up NOTIFY, and the relay publishes it all."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from gatherly.contracts import ContractViolation
from gatherly.db import create_engine
from gatherly.envelope import DomainEvent, Envelope
from gatherly.eventstore import COPY_FROM, START, ConcurrencyConflict, EventStore
from gatherly.outbox import Relay
from gatherly.settings import Settings, to_libpq_url
from tests.helpers import eventually, joined, left, running, stream_envelopes

STORE = EventStore(source="/gatherly/members")
MEMBERS = COPY_FROM  # two events each: twice the threshold


@pytest.fixture
async def engine(settings: Settings):  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database, "members")
    yield engine
    await engine.dispose()


def lives(streams: list[str]) -> list[Envelope]:
    """Joined then left for every stream, interleaved across streams like an import's chunk."""
    firsts = [STORE.envelope(joined(), stream_id=s, community_id="c1", version=1,
                             traceparent=None) for s in streams]
    seconds = [STORE.envelope(left(), stream_id=s, community_id="c1", version=2,
                              traceparent=None) for s in streams]
    return firsts + seconds


async def count(engine) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events")))


async def test_a_bulk_append_is_read_back_whole_in_commit_order(engine) -> None:  # type: ignore[no-untyped-def]
    streams = [str(uuid.uuid4()) for _ in range(MEMBERS)]
    envelopes = lives(streams)
    async with engine.begin() as conn:
        await STORE.append_envelopes(conn, envelopes)
    async with engine.connect() as conn:
        read = await STORE.read_all(conn, START, 10_000)
        one = await STORE.read_stream(conn, streams[7])
    assert [e.id for _, e in read] == [e.id for e in envelopes]
    assert len({p.tx_id for p, _ in read}) == 1  # one transaction
    assert [(e.type, e.sequence) for e in one] == [
        ("gatherly.member.joined", 1), ("gatherly.member.left", 2)]
    assert read[0][1].data == envelopes[0].data and read[0][1].time == envelopes[0].time


async def test_a_bulk_append_as_the_first_statement_rolls_back_with_its_transaction(
    engine,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await STORE.append_envelopes(conn, lives([str(uuid.uuid4()) for _ in range(MEMBERS)]))
            raise RuntimeError("the command fails after appending")
    assert await count(engine) == 0


@pytest.mark.parametrize("decided", [False, True], ids=["envelopes", "decided"])
async def test_a_bulk_append_over_a_taken_version_is_a_conflict_and_writes_nothing(
    engine, decided: bool,  # type: ignore[no-untyped-def]
) -> None:
    streams = [str(uuid.uuid4()) for _ in range(MEMBERS)]
    async with engine.begin() as conn:
        await STORE.append(conn, stream_id=streams[-1], community_id="c1", expected_version=0,
                           events=[joined()])
    with pytest.raises(ConcurrencyConflict):
        async with engine.begin() as conn:
            if decided:
                await STORE.append_decided(conn, decided_lives(streams), community_id="c1",
                                           traceparent=None)
            else:
                await STORE.append_envelopes(conn, lives(streams))
    assert await count(engine) == 1


async def test_a_bulk_append_with_one_event_off_contract_writes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    envelopes = lives([str(uuid.uuid4()) for _ in range(MEMBERS)])
    bad = envelopes[-1]
    envelopes[-1] = Envelope(id=bad.id, source=bad.source, type=bad.type, subject=bad.subject,
                             community_id="c1", sequence=2, time=bad.time,
                             data={"left_at": "not a time", "surprise": 1})
    with pytest.raises(ContractViolation):
        async with engine.begin() as conn:
            await STORE.append_envelopes(conn, envelopes)
    assert await count(engine) == 0


async def test_a_bulk_append_wakes_the_relay_at_commit_and_is_published_once_in_order(
    settings: Settings, engine,  # type: ignore[no-untyped-def]
) -> None:
    listener = await asyncpg.connect(to_libpq_url(settings.database))
    woken = asyncio.Event()
    await listener.add_listener(STORE.wake_channel, lambda *_: woken.set())
    streams = [str(uuid.uuid4()) for _ in range(MEMBERS)]
    envelopes = lives(streams)
    try:
        async with engine.begin() as conn:
            await STORE.append_envelopes(conn, envelopes)
            await asyncio.sleep(0.2)
            assert not woken.is_set()  # NOTIFY is delivered at commit, never before
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await listener.close()
    relay = Relay(settings, "members", engine)
    async with running(relay):
        async def all_published() -> bool:
            return relay.published >= len(envelopes)

        await eventually(all_published)
    published = await stream_envelopes(settings)
    assert [e.id for e in published] == [e.id for e in envelopes]


GUARD = "written AS (INSERT INTO guard_rows VALUES (:gid) ON CONFLICT DO NOTHING RETURNING id)"


async def test_an_append_with_the_callers_writes_goes_in_only_when_they_wrote(
    engine,  # type: ignore[no-untyped-def]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE guard_rows (id text PRIMARY KEY)"))
    first, again = lives([str(uuid.uuid4())])[:1], lives([str(uuid.uuid4())])[:1]
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")  # one statement, no BEGIN
        assert await STORE.append_if_written(conn, first, writes=GUARD, params={"gid": "a"})
        assert not await STORE.append_if_written(conn, again, writes=GUARD, params={"gid": "a"})
        taken = lives([first[0].subject])[:1]  # version 1 of a stream that has it: a conflict
        with pytest.raises(ConcurrencyConflict):
            await STORE.append_if_written(conn, taken, writes=GUARD, params={"gid": "b"})
    async with engine.connect() as conn:
        rows = set((await conn.execute(text("SELECT id FROM guard_rows"))).scalars())
        events = await STORE.read_all(conn, START, 10)
    assert rows == {"a"}  # the conflicting statement kept none of its own writes either
    assert [e.id for _, e in events] == [first[0].id]


def decided_lives(streams: list[str]) -> list[tuple[str, int, DomainEvent]]:
    """`lives` as (stream, version, event), the form a batch's plan hands `append_decided`."""
    return [(s, 1, joined()) for s in streams] + [(s, 2, left()) for s in streams]


@pytest.mark.parametrize("members", [MEMBERS, 3])  # by COPY, and under COPY_FROM by insert
async def test_decided_events_are_appended_as_their_envelopes_would_be(
    engine, members: int,  # type: ignore[no-untyped-def]
) -> None:
    streams = [str(uuid.uuid4()) for _ in range(members)]
    decided = decided_lives(streams)
    async with engine.begin() as conn:
        await STORE.append_decided(conn, decided, community_id="c1", traceparent=None)
    async with engine.connect() as conn:
        read = [e for _, e in await STORE.read_all(conn, START, 10_000)]
    assert [(e.subject, e.sequence, e.type, e.data, e.time) for e in read] == [
        (s, v, event.type, event.data, event.time) for s, v, event in decided]
    assert {e.community_id for e in read} == {"c1"} and {e.traceparent for e in read} == {None}
    assert len({e.id for e in read}) == len(read)  # each its own new id


async def test_decided_events_with_one_off_contract_write_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    decided = decided_lives([str(uuid.uuid4()) for _ in range(MEMBERS)])
    stream, version, bad = decided[-1]
    decided[-1] = (stream, version, DomainEvent(bad.type, {"left_at": "not a time"}, bad.time))
    with pytest.raises(ContractViolation):
        async with engine.begin() as conn:
            await STORE.append_decided(conn, decided, community_id="c1", traceparent=None)
    assert await count(engine) == 0


async def test_prepared_events_are_appended_as_chosen_like_decided_ones(engine) -> None:  # type: ignore[no-untyped-def]
    decided = decided_lives([str(uuid.uuid4()) for _ in range(5)])
    rows = STORE.prepare_decided(decided, community_id="c1", traceparent=None)
    chosen = (0, 2, 5, 7)  # a bulk path keeps only some, e.g. an import its new members'
    async with engine.begin() as conn:
        await STORE.append_prepared(conn, [rows[i] for i in chosen])
    async with engine.connect() as conn:
        read = [e for _, e in await STORE.read_all(conn, START, 10_000)]
    assert [(e.subject, e.sequence, e.type, e.data, e.time) for e in read] == [
        (s, v, event.type, event.data, event.time) for s, v, event in (decided[i] for i in chosen)]
    assert {e.community_id for e in read} == {"c1"} and len({e.id for e in read}) == 4
    with pytest.raises(ConcurrencyConflict):  # the same rows again: the versions are taken
        async with engine.begin() as conn:
            await STORE.append_prepared(conn, [rows[0]])
    assert await count(engine) == 4


def test_preparing_an_event_off_contract_raises_before_anything_is_sent() -> None:
    decided = decided_lives([str(uuid.uuid4()) for _ in range(MEMBERS)])
    stream, version, bad = decided[-1]
    decided[-1] = (stream, version, DomainEvent(bad.type, {"left_at": "not a time"}, bad.time))
    with pytest.raises(ContractViolation):
        STORE.prepare_decided(decided, community_id="c1", traceparent=None)
