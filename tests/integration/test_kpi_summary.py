"""The summary reads one moment: a batch the projection commits after the summary's snapshot is
in none of its numbers, whether the parts run side by side (snapshot exported and imported) or
one by one; many questions at once on a small pool all get answers; no connection goes back to
the pool inside the summary's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.db import create_engine
from gatherly.settings import Settings
from services.kpi.queries import summary
from services.kpi.queries.summary import Summaries
from services.kpi.queries.window import Window
from services.kpi.queries.zones import ensure_zone
from tests.integration.test_kpi_support import History, project, publish

COMMUNITY = "sum"
T0 = datetime.fromisoformat("2025-03-03T10:00:00+00:00")
MARCH = Window(date(2025, 3, 1), date(2025, 3, 31), "day", "UTC")
Ask = Callable[[Summaries], Awaitable[dict[str, Any]]]
WAYS: dict[str, Ask] = {
    "side by side": lambda s: s.side_by_side(COMMUNITY, MARCH, 24.0),
    "one by one": lambda s: s.one_by_one(COMMUNITY, MARCH, 24.0),
}


def batch(history: History, first: int, channel: str, members: int = 3) -> History:
    """Each member joins, gives feedback and views content on `channel`."""
    for i in range(first, first + members):
        at = T0 + timedelta(hours=i)
        history.add("member.joined", f"m{i}", at, channel=channel, joined_at=at)
        history.add("feedback.submitted", f"f{i}", at, member_id=f"@m{i}",
                    about_kind="community", channel=channel, submitted_at=at)
        history.add("content.viewed", f"v{i}", at, content_id="@p1", channel=channel, count=2,
                    viewed_at=at, member_id=f"@m{i}")
    return history


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database, "kpi", pool_size=3)
    history = batch(History(COMMUNITY), 0, "telegram")
    await publish(settings, history.facts)
    await project(settings, len(history.facts))
    await ensure_zone(engine, COMMUNITY, "UTC")
    yield engine
    await engine.dispose()


async def idle_in_transaction(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'"))
    return int(found or 0)


@pytest.mark.parametrize("way", WAYS)
async def test_a_batch_committed_after_the_snapshot_is_in_none_of_the_numbers(
    settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    summaries = Summaries(engine, pool_capacity=6)
    before = await WAYS[way](summaries)
    late = batch(History(COMMUNITY), 10, "vk", members=4)  # vk ranks first after it
    feedback_totals = summary.feedback_totals
    committed = []

    async def after_a_batch(conn: AsyncConnection, *args: Any) -> dict[str, Any]:
        # Feedback is read last (one by one) or on a connection of its own (side by side):
        # the batch commits after the summary's snapshot, before this part's first read.
        if not committed:
            await publish(settings, late.facts)
            await project(settings, len(late.facts))
            committed.append(True)
        return await feedback_totals(conn, *args)

    monkeypatch.setattr(summary, "feedback_totals", after_a_batch)
    during = await WAYS[way](summaries)
    after = await WAYS[way](summaries)
    assert committed
    assert during == before
    assert after["members"]["joined"] == before["members"]["joined"] + 4
    assert after["feedback"]["submitted"] == before["feedback"]["submitted"] + 4
    assert after["views"] == before["views"] + 8
    assert after["active_members"] == before["active_members"] + 4
    assert after["top_channel"] == "vk" != before["top_channel"]
    assert await idle_in_transaction(engine) == 0


async def test_side_by_side_and_one_by_one_give_the_same_answer(engine: AsyncEngine) -> None:
    summaries = Summaries(engine, pool_capacity=6)
    side, one = [await ask(summaries) for ask in WAYS.values()]
    assert side == one
    assert side["members"]["joined"] == 3 and side["top_channel"] == "telegram"
    assert side["active_members"] == 3 and side["feedback"]["submitted"] == 3


async def test_many_questions_at_once_on_a_small_pool_all_get_answers(
    engine: AsyncEngine
) -> None:
    """Six connections, twelve summaries at once: fanned out without a bound, each would hold
    its first connection waiting for two more (a pool run dry until its 30 s timeout)."""
    summaries = Summaries(engine, pool_capacity=6)
    expected = await summaries.one_by_one(COMMUNITY, MARCH, 24.0)
    answers = await asyncio.wait_for(asyncio.gather(
        *(summaries.answer(COMMUNITY, MARCH, 24.0) for _ in range(12))), 20)
    assert answers == [expected] * 12
    assert await idle_in_transaction(engine) == 0


async def test_a_part_that_fails_stops_the_others_and_leaves_no_transaction_in_the_pool(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    summaries = Summaries(engine, pool_capacity=6)
    expected = await summaries.side_by_side(COMMUNITY, MARCH, 24.0)

    async def broken(conn: AsyncConnection, *args: Any) -> dict[str, Any]:
        raise RuntimeError("a part failed")

    content_and_events = summary._content_and_events

    async def slow(conn: AsyncConnection, *args: Any) -> Any:
        await asyncio.sleep(0.5)  # still running when the other part fails
        return await content_and_events(conn, *args)

    with monkeypatch.context() as patched:
        patched.setattr(summary, "feedback_totals", broken)
        patched.setattr(summary, "_content_and_events", slow)
        for ask in WAYS.values():
            with pytest.raises(RuntimeError):
                await ask(summaries)
            # The other parts were stopped, not left running on their connections.
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await idle_in_transaction(engine) == 0
    assert await summaries.side_by_side(COMMUNITY, MARCH, 24.0) == expected


async def test_a_snapshot_that_cannot_be_read_fails_as_a_database_error(
    engine: AsyncEngine
) -> None:
    """The summary opens its transactions on the driver's connection; their errors still
    arrive as SQLAlchemy's (the API's 503, the stream's retry), and the connection is dropped."""
    summaries = Summaries(engine, pool_capacity=6)
    with pytest.raises(DBAPIError, match="does not exist"):
        await summaries._at("00000003-0000001B-1", lambda conn: conn.scalar(text("SELECT 1")))
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await idle_in_transaction(engine) == 0


async def test_a_zones_first_summary_registers_the_zone_and_reads_its_rollups(
    engine: AsyncEngine
) -> None:
    """The summary checks the zone in its snapshot's round trip (the API asks no `ensure_zone`
    before it): a zone nobody asked in yet is registered and backfilled, then read."""
    summaries = Summaries(engine, pool_capacity=6)
    kolkata = Window(MARCH.first, MARCH.last, "day", "Asia/Kolkata")
    first = await summaries.side_by_side(COMMUNITY, kolkata, 24.0)
    async with engine.connect() as conn:
        zones = set((await conn.execute(text(
            "SELECT tz FROM kpi_zones WHERE community_id = :c"), {"c": COMMUNITY})).scalars())
    assert zones == {"UTC", "Asia/Kolkata"}
    assert first["members"]["joined"] == 3 and first["views"] == 6
    assert await summaries.side_by_side(COMMUNITY, kolkata, 24.0) == first
    assert await idle_in_transaction(engine) == 0
