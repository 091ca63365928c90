"""The zone-keyed rollups equal a GROUP BY over the fact tables, whether the zone was registered
before the facts, after them (backfill), or while the projection was writing them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.db import create_engine
from gatherly.settings import Settings
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_support import COMMUNITY as OPERATOR_COMMUNITY
from tests.integration.test_kpi_support import (
    kpi_client,
    project_while_zones_register,
    with_late_attendances,
)

COMMUNITY = "oracle"  # the generated history's
ZONES = ("UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Europe/Berlin")

# Straight from the facts, written apart from services/kpi/facts/rollups.py on purpose.
DELAYS = ("SELECT CAST(date_trunc('{p}', c.published_at AT TIME ZONE :tz) AS date),"
          " CAST(sign(d) * CASE WHEN d = 0 THEN 0"
          " ELSE floor(log(1.01, CAST(abs(d) AS numeric))) + 10000 END AS int),"
          " count(*) FROM (SELECT c.published_at,"
          " extract(epoch FROM r.at - c.published_at) AS d FROM content c"
          " JOIN reaction_facts r USING (community_id, content_id)"
          " WHERE c.community_id = :c AND r.added) c GROUP BY 1, 2")
EXPECTED = {
    "member_days": "SELECT CAST(at AT TIME ZONE :tz AS date), channel, kind, count(*)"
                   " FROM member_changes WHERE community_id = :c GROUP BY 1, 2, 3",
    "view_days": "SELECT CAST(at AT TIME ZONE :tz AS date), channel, sum(count) FROM views"
                 " WHERE community_id = :c GROUP BY 1, 2",
    "content_view_days": "SELECT CAST(at AT TIME ZONE :tz AS date), content_id, sum(count)"
                         " FROM views WHERE community_id = :c GROUP BY 1, 2",
    "reaction_days": "SELECT CAST(at AT TIME ZONE :tz AS date), channel, kind, added, count(*)"
                     " FROM reaction_facts WHERE community_id = :c GROUP BY 1, 2, 3, 4",
    "reaction_total_days": "SELECT CAST(at AT TIME ZONE :tz AS date), added, count(*)"
                           " FROM reaction_facts WHERE community_id = :c GROUP BY 1, 2",
    "active_counts": "SELECT p, CAST(date_trunc(p, at AT TIME ZONE :tz) AS date),"
                     " count(DISTINCT member_id) FROM activity,"
                     " unnest(ARRAY['day', 'week', 'month']) p"
                     " WHERE community_id = :c GROUP BY 1, 2",
    # Added reactions by (local day and month of publication, 1 % geometric delay bin, signed).
    **{f"reaction_delay_{p}s": DELAYS.format(p=p) for p in ("day", "month")},
    # Counter snapshots (only each counter's latest is kept) by the local day of their as_of.
    "view_counter_days": "SELECT CAST(as_of AT TIME ZONE :tz AS date), channel, sum(total),"
                         " count(*) FROM view_counters WHERE community_id = :c GROUP BY 1, 2",
    "reaction_counter_days": "SELECT CAST(as_of AT TIME ZONE :tz AS date), channel, kind,"
                             " sum(total), count(*) FROM reaction_counters"
                             " WHERE community_id = :c GROUP BY 1, 2, 3",
    "attendance_days": "SELECT CAST(checked_in_at AT TIME ZONE :tz AS date), channel, walk_in,"
                       " count(*) FROM attendances WHERE community_id = :c GROUP BY 1, 2, 3",
    "registration_days": "SELECT CAST(registered_at AT TIME ZONE :tz AS date), channel, count(*)"
                         " FROM registrations WHERE community_id = :c"
                         " AND registered_at IS NOT NULL AND cancelled_at IS NULL GROUP BY 1, 2",
    "feedback_days": "SELECT CAST(at AT TIME ZONE :tz AS date), kind, coalesce(channel, ''),"
                     " count(*) FROM feedback, LATERAL (VALUES ('submitted', submitted_at),"
                     " ('answered', answered_at), ('resolved', resolved_at)) k(kind, at)"
                     " WHERE community_id = :c AND at IS NOT NULL GROUP BY 1, 2, 3",
    # Per active day (and its month, where the previous day is before that month) and the
    # member's previous active day: written apart.
    "active_gaps": "SELECT p, CAST(date_trunc(p, CAST(day AS timestamp)) AS date), previous,"
                   " count(*) FROM (SELECT day, coalesce(lag(day) OVER (PARTITION BY member_id"
                   " ORDER BY day), date '-infinity') AS previous FROM (SELECT DISTINCT"
                   " member_id, CAST(at AT TIME ZONE :tz AS date) AS day FROM activity"
                   " WHERE community_id = :c) d) g, unnest(ARRAY['day', 'month']) p"
                   " WHERE previous < CAST(date_trunc(p, CAST(day AS timestamp)) AS date)"
                   " GROUP BY 1, 2, 3",
}
STORED = {
    "member_days": "SELECT day, channel, kind, n",
    "view_days": "SELECT day, channel, n",
    "content_view_days": "SELECT day, content_id, n",
    "reaction_days": "SELECT day, channel, kind, added, n",
    "reaction_total_days": "SELECT day, added, n",
    "active_counts": "SELECT period, start, n",
    "reaction_delay_days": "SELECT day, bin, n",
    "reaction_delay_months": "SELECT month, bin, n",
    "active_gaps": "SELECT period, start, previous, n",
    "attendance_days": "SELECT day, channel, walk_in, n",
    "view_counter_days": "SELECT day, channel, n, snapshots",
    "reaction_counter_days": "SELECT day, channel, kind, n, snapshots",
    "registration_days": "SELECT day, channel, n",
    "feedback_days": "SELECT day, kind, channel, n",
}
FIRST_ATTENDANCES = (
    "SELECT DISTINCT ON (member_id) member_id, checked_in_at, event_id FROM attendances"
    " WHERE community_id = :c ORDER BY member_id, checked_in_at, event_id",
    "SELECT member_id, checked_in_at, event_id FROM first_attendances WHERE community_id = :c",
)
EVENT_REGISTRATIONS = (
    "SELECT r.event_id, count(*), count(a.member_id) FROM registrations r"
    " LEFT JOIN attendances a USING (community_id, event_id, member_id)"
    " WHERE r.community_id = :c AND r.registered_at IS NOT NULL AND r.cancelled_at IS NULL"
    " GROUP BY 1",
    "SELECT event_id, registered, attended FROM event_registrations WHERE community_id = :c"
    " AND (registered, attended) <> (0, 0)",
)
FIRST_REACTIONS = (
    "SELECT content_id, min(at) FROM reaction_facts WHERE community_id = :c AND added GROUP BY 1",
    "SELECT content_id, first_at FROM content_first_reactions WHERE community_id = :c",
)


async def rows(engine: AsyncEngine, sql: str, tz: str) -> set[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return {tuple(r) for r in await conn.execute(text(sql), {"c": COMMUNITY, "tz": tz})}


async def assert_rollups_match_the_facts(engine: AsyncEngine, tz: str) -> None:
    for table, expected in EXPECTED.items():
        # A count a later fact took back keeps its row at 0 (facts/active.py, changing.py).
        kept = " AND n <> 0" if table in ("active_gaps", "registration_days",
                                          "feedback_days") else ""
        if table.endswith("counter_days"):  # a day its snapshots left keeps a row of none
            kept = " AND snapshots <> 0"
        stored = f"{STORED[table]} FROM {table} WHERE community_id = :c AND tz = :tz{kept}"
        assert await rows(engine, stored, tz) == await rows(engine, expected, tz), (table, tz)


async def test_rollups_are_exact_whenever_the_zone_was_registered(settings: Settings) -> None:
    history = generate(seed=3)
    facts = with_late_attendances(history)
    engine = create_engine(settings.database, "kpi", pool_size=2)
    try:
        await project_while_zones_register(settings, engine, facts, ZONES)
        async with engine.connect() as conn:
            for table in ("member_days", "reaction_delay_days", "reaction_delay_months",
                          "active_gaps", "attendance_days",
                          "registration_days", "feedback_days", "view_counter_days",
                          "reaction_counter_days"):
                assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) > 0, table
        for tz in ZONES:
            await assert_rollups_match_the_facts(engine, tz)
        for pair in (FIRST_REACTIONS, FIRST_ATTENDANCES, EVENT_REGISTRATIONS):
            expected, stored = [await rows(engine, sql, "UTC") for sql in pair]
            assert stored == expected and stored, pair[1]
    finally:
        await engine.dispose()


async def test_a_community_is_kept_in_at_most_eight_zones(settings: Settings) -> None:
    zones = ("UTC", "Asia/Kolkata", "Asia/Tokyo", "Europe/Berlin", "Europe/London",
             "America/New_York", "America/Sao_Paulo", "Australia/Sydney")
    async for client in kpi_client(settings):
        for tz in zones:
            answer = await client.get(f"/v1/communities/{OPERATOR_COMMUNITY}/kpis/members",
                                      params={"tz": tz})
            assert answer.status_code == 200, answer.text
        ninth = await client.get(f"/v1/communities/{OPERATOR_COMMUNITY}/kpis/members",
                                 params={"tz": "Africa/Cairo"})
        again = await client.get(f"/v1/communities/{OPERATOR_COMMUNITY}/kpis/views",
                                 params={"tz": "Asia/Tokyo"})
    assert ninth.status_code == 400
    assert ninth.headers["content-type"] == "application/problem+json"
    assert "Asia/Tokyo" in ninth.json()["detail"]
    assert again.status_code == 200
