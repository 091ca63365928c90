"""Participants per event, feedback waits and the open backlog: each
rollup equals a recount over the facts whether its zone was registered before, during or after
the projection (and when filled by migration kpi0011), and the waits and backlog read from them
are exactly what `percentile_cont` over every feedback row gives."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.db import create_engine
from gatherly.settings import Settings
from services.kpi.facts import backlog as kept
from services.kpi.facts import participants
from services.kpi.queries import backlog
from services.kpi.queries.window import Window
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_rollups import COMMUNITY, ZONES, rows
from tests.integration.test_kpi_support import project_while_zones_register, with_late_attendances

# Each member's first attendance, straight from the attendances (not first_attendances).
FIRSTS = ("SELECT DISTINCT ON (member_id) member_id, checked_in_at, event_id FROM attendances"
          " WHERE community_id = :c ORDER BY member_id, checked_in_at, event_id")
EXPECTED = {
    "feedback_waits": "SELECT p, CAST(date_trunc(p, submitted_at AT TIME ZONE :tz) AS date),"
                      " CAST(sign(d) * CASE WHEN d = 0 THEN 0"
                      " ELSE floor(log(1.05, CAST(abs(d) AS numeric))) + 1000 END AS int),"
                      " count(*) FROM (SELECT submitted_at,"
                      " extract(epoch FROM answered_at - submitted_at) AS d FROM feedback"
                      " WHERE community_id = :c AND answered_at IS NOT NULL"
                      " AND submitted_at IS NOT NULL) f, unnest(ARRAY['day', 'month']) p"
                      " GROUP BY 1, 2, 3",
    "feedback_open": "SELECT CAST(submitted_at AT TIME ZONE :tz AS date),"
                     " coalesce(CAST(resolved_at AT TIME ZONE :tz AS date), 'infinity'),"
                     " count(*) FROM feedback WHERE community_id = :c"
                     " AND submitted_at IS NOT NULL GROUP BY 1, 2",
}
STORED = {
    "feedback_waits": "SELECT period, start, bin, n",
    "feedback_open": "SELECT submitted, resolved, n",
}
PER_EVENT = (
    "SELECT a.event_id, count(*), count(*) FILTER (WHERE a.walk_in),"
    f" count(f.member_id) FROM attendances a LEFT JOIN ({FIRSTS}) f"
    " ON f.member_id = a.member_id AND f.event_id = a.event_id"
    " WHERE a.community_id = :c GROUP BY 1",
    "SELECT event_id, attended, walk_ins, new FROM event_participants WHERE community_id = :c"
    " AND (attended, walk_ins, new) <> (0, 0, 0)",
)
# The definitions the rollups replace, over every feedback row.
WAITS = (
    "SELECT count(*) AS answered, count(*) FILTER (WHERE d <= :sla) AS within_sla,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS median,"
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY s) AS p90"
    " FROM (SELECT answered_at - submitted_at AS d,"
    " extract(epoch FROM answered_at - submitted_at) AS s FROM feedback"
    " WHERE community_id = :c AND answered_at IS NOT NULL"
    " AND submitted_at >= :start AND submitted_at < :end) f"
)
BACKLOG = (
    "SELECT count(*) AS open, percentile_cont(0.5) WITHIN GROUP (ORDER BY age) AS median_age,"
    " max(age) AS max_age FROM (SELECT extract(epoch FROM CAST(:end AS timestamptz)"
    " - submitted_at) AS age FROM feedback WHERE community_id = :c AND submitted_at < :end"
    " AND (resolved_at IS NULL OR resolved_at >= :end)) o"
)
WINDOWS = ((date(2025, 1, 1), date(2025, 12, 31)), (date(2025, 2, 10), date(2025, 7, 20)),
           (date(2025, 3, 1), date(2025, 3, 31)), (date(2025, 6, 15), date(2025, 6, 15)),
           (date(2030, 1, 1), date(2030, 1, 2)))


async def assert_rollups_match_the_facts(engine: AsyncEngine, tz: str) -> None:
    for table, expected in EXPECTED.items():
        stored = f"{STORED[table]} FROM {table} WHERE community_id = :c AND tz = :tz AND n <> 0"
        assert await rows(engine, stored, tz) == await rows(engine, expected, tz), (table, tz)


async def assert_answers_are_exact(engine: AsyncEngine, tz: str) -> None:
    async with engine.connect() as conn:
        for first, last in WINDOWS:
            w = Window(first, last, "day", tz)
            params: dict[str, Any] = {"c": COMMUNITY, **w.params()}
            median = (await conn.execute(
                text(WAITS), {**params, "sla": timedelta(0)})).one().median
            open_ = (await conn.execute(text(BACKLOG), params)).one()
            # The SLA right at a real wait (a boundary row), and around it.
            for sla in (timedelta(hours=24), timedelta(minutes=30), timedelta(hours=3),
                        timedelta(seconds=float(median or 1))):
                expected = (await conn.execute(
                    text(WAITS), {**params, "sla": sla})).one()
                waits, backlog_, row = await backlog.answers(
                    conn, COMMUNITY, w, sla, "SELECT CAST(:probe AS int) AS probe", probe=7)
                assert waits == {"answered": expected.answered,
                                 "within_sla": expected.within_sla,
                                 "median": expected.median, "p90": expected.p90}, (w, sla)
                assert backlog_ == {
                    "open": open_.open, "median_age": open_.median_age,
                    "max_age": None if open_.max_age is None else float(open_.max_age),
                }, w
                assert row.probe == 7


async def test_event_and_feedback_rollups_are_exact_whenever_the_zone_was_registered(
    settings: Settings,
) -> None:
    history = generate(seed=5)
    facts = with_late_attendances(history)
    engine = create_engine(settings.database, "kpi", pool_size=2)
    try:
        await project_while_zones_register(settings, engine, facts, ZONES)
        await _assert_all(engine)
        await _refill_as_the_migration_does(engine)
        await _assert_all(engine)
    finally:
        await engine.dispose()


async def _assert_all(engine: AsyncEngine) -> None:
    for table in (*EXPECTED, "event_participants"):
        assert await rows(engine, f"SELECT 1 FROM {table} WHERE n <> 0 LIMIT 1"
                          if table != "event_participants"
                          else f"SELECT 1 FROM {table} LIMIT 1", "UTC"), table
    expected, stored = [await rows(engine, sql, "UTC") for sql in PER_EVENT]
    assert stored == expected and stored
    for tz in ZONES:
        await assert_rollups_match_the_facts(engine, tz)
        await assert_answers_are_exact(engine, tz)


async def _refill_as_the_migration_does(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE event_participants,"
                                " feedback_waits, feedback_open"))
        await conn.execute(text(participants.EVENT_PARTICIPANTS_FROM_FACTS))
        for sql in kept.backfill("TRUE").values():
            await conn.execute(text(sql))
