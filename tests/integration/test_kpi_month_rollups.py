"""The monthly rollups (member_months, content_view_months, reaction_months, view_months and the
platforms' counters' view_counter_months, reaction_counter_months) equal a GROUP BY
over the facts whenever the zone was registered; and the answers that read whole months from them
and the days around from the daily rollups equal sums straight over the facts, for windows that
cut months, lie inside one month, or cross a year."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.db import create_engine
from gatherly.settings import Settings
from services.kpi.queries.channels import channels_kpi
from services.kpi.queries.content import reactions_kpi, views_kpi
from services.kpi.queries.members import members_kpi, members_totals
from services.kpi.queries.window import Granularity, Window
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_rollups import COMMUNITY, ZONES, rows
from tests.integration.test_kpi_support import project_while_zones_register

LOCAL_MONTH = "CAST(date_trunc('month', {at} AT TIME ZONE :tz) AS date)"
# Straight from the facts, written apart from services/kpi/facts/rollups.py on purpose.
EXPECTED = {
    "member_months": f"SELECT {LOCAL_MONTH.format(at='at')}, channel, kind, count(*)"
                     " FROM member_changes WHERE community_id = :c GROUP BY 1, 2, 3",
    "content_view_months": f"SELECT {LOCAL_MONTH.format(at='at')}, content_id, sum(count)"
                           " FROM views WHERE community_id = :c GROUP BY 1, 2",
    "reaction_months": f"SELECT {LOCAL_MONTH.format(at='at')}, channel, kind, added, count(*)"
                       " FROM reaction_facts WHERE community_id = :c GROUP BY 1, 2, 3, 4",
    "view_months": f"SELECT {LOCAL_MONTH.format(at='at')}, channel, sum(count)"
                   " FROM views WHERE community_id = :c GROUP BY 1, 2",
    "view_counter_months": f"SELECT {LOCAL_MONTH.format(at='as_of')}, channel, sum(total),"
                           " count(*) FROM view_counters WHERE community_id = :c GROUP BY 1, 2",
    "reaction_counter_months": f"SELECT {LOCAL_MONTH.format(at='as_of')}, channel, kind,"
                               " sum(total), count(*) FROM reaction_counters"
                               " WHERE community_id = :c GROUP BY 1, 2, 3",
}
STORED = {
    "member_months": "SELECT month, channel, kind, n",
    "content_view_months": "SELECT month, content_id, n",
    "reaction_months": "SELECT month, channel, kind, added, n",
    "view_months": "SELECT month, channel, n",
    # A month its snapshots left keeps a row of none (facts/counters.py).
    "view_counter_months": "SELECT month, channel, n, snapshots",
    "reaction_counter_months": "SELECT month, channel, kind, n, snapshots",
}
WINDOWS = ((date(2025, 2, 11), date(2025, 10, 20)), (date(2025, 5, 3), date(2025, 5, 17)),
           (date(2024, 12, 20), date(2025, 1, 5)), (date(2025, 3, 1), date(2025, 6, 30)),
           (date(2024, 11, 1), date(2026, 1, 31)))
GRANULARITIES: tuple[Granularity, ...] = ("day", "week")
IN_WINDOW = "CAST({at} AT TIME ZONE :tz AS date) BETWEEN :first AND :last"
SNAPSHOT_IN_WINDOW = "as_of >= :start AND as_of < :end"
FACTS = {
    "moved": "SELECT channel, kind, count(*) FROM member_changes WHERE community_id = :c"
             f" AND {IN_WINDOW.format(at='at')} GROUP BY 1, 2",
    "opening": "SELECT channel, sum(CASE WHEN kind = 'left' THEN -1 ELSE 1 END)"
               " FROM member_changes WHERE community_id = :c"
               " AND CAST(at AT TIME ZONE :tz AS date) < :first GROUP BY 1",
    "content": "SELECT content_id, sum(n) FROM (SELECT content_id, count AS n FROM views"
               f" WHERE community_id = :c AND {IN_WINDOW.format(at='at')} UNION ALL"
               " SELECT content_id, total FROM view_counters WHERE community_id = :c"
               f" AND {SNAPSHOT_IN_WINDOW}) v GROUP BY 1",
    "reactions": "SELECT channel, kind, CASE WHEN added THEN 'added' ELSE 'removed' END, count(*)"
                 " FROM reaction_facts WHERE community_id = :c"
                 f" AND {IN_WINDOW.format(at='at')} GROUP BY 1, 2, 3 UNION ALL"
                 " SELECT channel, kind, 'counted', sum(total) FROM reaction_counters"
                 f" WHERE community_id = :c AND {SNAPSHOT_IN_WINDOW} GROUP BY 1, 2",
    # Per period (the window's granularity), written apart: `date_trunc` in the zone.
    "view_periods": "SELECT CAST(date_trunc(:g, t AT TIME ZONE :tz) AS date), sum(n) FROM ("
                    "SELECT at AS t, count AS n FROM views WHERE community_id = :c"
                    f" AND {IN_WINDOW.format(at='at')} UNION ALL SELECT as_of, total"
                    f" FROM view_counters WHERE community_id = :c AND {SNAPSHOT_IN_WINDOW}) v"
                    " GROUP BY 1",
    "counted_periods": "SELECT CAST(date_trunc(:g, as_of AT TIME ZONE :tz) AS date), sum(total)"
                       " FROM reaction_counters WHERE community_id = :c"
                       f" AND {SNAPSHOT_IN_WINDOW} GROUP BY 1",
}


async def from_facts(engine: AsyncEngine, w: Window) -> dict[str, list[Any]]:
    params = {"c": COMMUNITY, **w.params()}
    async with engine.connect() as conn:
        return {name: list(await conn.execute(text(sql), params)) for name, sql in FACTS.items()}


async def assert_answers_match_the_facts(engine: AsyncEngine, w: Window) -> None:
    facts = await from_facts(engine, w)
    moved: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("joined", "rejoined", "left"), 0))
    for channel, kind, n in facts["moved"]:
        moved[channel][kind] = int(n)
    opening = {channel: int(n) for channel, n in facts["opening"]}
    expected_members = {
        ch: {**moved[ch], "total": opening.get(ch, 0) + moved[ch]["joined"]
             + moved[ch]["rejoined"] - moved[ch]["left"]}
        for ch in set(moved) | set(opening)}
    splits: dict[str, dict[str, dict[str, int]]] = {"channels": {}, "kinds": {}}
    for channel, kind, part, n in facts["reactions"]:
        for split, key in (("channels", channel), ("kinds", kind)):
            counts = splits[split].setdefault(key, {"added": 0, "removed": 0, "counted": 0})
            counts[part] += int(n)
    async with engine.connect() as conn:
        members = await members_kpi(conn, COMMUNITY, w)
        totals = await members_totals(conn, COMMUNITY, w)
        views = await views_kpi(conn, COMMUNITY, w, limit=1000)
        reactions = await reactions_kpi(conn, COMMUNITY, w)
        channels = {c["channel"]: c for c in (await channels_kpi(conn, COMMUNITY, w))["channels"]}
    where = (w.first, w.last, w.tz)
    assert {ch: {k: c[k] for k in ("joined", "rejoined", "left", "total")}
            for ch, c in members["channels"].items()} == expected_members, where
    assert totals["total"] == members["total"] == sum(
        c["total"] for c in expected_members.values()), where
    assert {c["content_id"]: c["views"] for c in views["content"]} == {
        content: int(n) for content, n in facts["content"]}, where
    ranked = [(-c["views"], c["content_id"]) for c in views["content"]]
    assert ranked == sorted(ranked), where
    assert {split: reactions[split] for split in splits} == splits, where
    for channel, counts in expected_members.items():
        assert channels.get(channel, {}).get("joins", 0) == counts["joined"] + counts["rejoined"]
    for channel, counts in splits["channels"].items():
        assert channels[channel]["reactions"] == counts["added"] + counts["counted"], where
    assert {p["start"]: p["views"] for p in views["periods"] if p["views"]} == {
        b.isoformat(): int(n) for b, n in facts["view_periods"]}, where
    assert {p["start"]: p["counted"] for p in reactions["periods"] if p["counted"]} == {
        b.isoformat(): int(n) for b, n in facts["counted_periods"]}, where


async def test_month_rollups_and_the_answers_over_them_are_exact(settings: Settings) -> None:
    history = generate(seed=5)
    facts = history[:6000]
    engine = create_engine(settings.database, "kpi", pool_size=2)
    try:
        await project_while_zones_register(settings, engine, facts, ZONES)
        for tz in ZONES:
            for table, expected in EXPECTED.items():
                kept = " AND snapshots <> 0" if "counter" in table else ""
                stored = f"{STORED[table]} FROM {table} WHERE community_id = :c AND tz = :tz{kept}"
                found = await rows(engine, stored, tz)
                assert found and found == await rows(engine, expected, tz), (table, tz)
        for tz in ("Europe/Berlin", "Pacific/Chatham"):
            for first, last in WINDOWS:
                for by in GRANULARITIES:
                    await assert_answers_match_the_facts(engine, Window(first, last, by, tz))
    finally:
        await engine.dispose()
