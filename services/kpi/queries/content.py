"""Content views (events and imported counters) and reactions (members' own facts and platforms'
anonymous counts): counts per period, channel and kind, reaction speed, reactions per view.

Reaction speed: queries/speed.py (time to first reaction exact, to every reaction within 0.5 %)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.speed import FIRSTS, as_float, speed_kpi
from services.kpi.queries.window import Window, bucket, ratio
from services.kpi.queries.zones import IN_WINDOW, day_bucket, whole_months_and_days

# Views come from the daily rollups; a counter snapshot counts at its `as_of` (only each
# (content, counter)'s latest one is kept, few per content item: read from the table).
VIEWS = """
    SELECT {bucket} AS b, channel, n FROM view_days WHERE {in_window}
    UNION ALL
    SELECT {as_of}, channel, total FROM view_counters
    WHERE community_id = :c AND as_of >= :start AND as_of < :end
"""
# Whole months from `content_view_months`: a year is ~12 rows per content item, not ~365.
CONTENT_VIEWS = f"""
    {whole_months_and_days("content_id, n", "content_view")}
    UNION ALL
    SELECT content_id, total FROM view_counters
    WHERE community_id = :c AND as_of >= :start AND as_of < :end
"""

# One round trip: views per period and channel (`content_id` NULL), then the most viewed
# content items (a UNION keeps no order: Python sorts them again, most viewed first, then id).
VIEWS_AND_TOP = (
    "SELECT b, channel, CAST(NULL AS text) AS content_id, sum(n) AS n FROM ({views}) v"
    " GROUP BY 1, 2 UNION ALL (SELECT NULL, NULL, content_id, sum(n) FROM ("
    + CONTENT_VIEWS + ") t GROUP BY 3 ORDER BY 4 DESC, 3 LIMIT :limit)"
)

# A platform's anonymous count: only each (content, counter, kind)'s latest snapshot is kept, and
# it counts at its `as_of`. It has no member and no moment of reacting, so it is not in `_speed`.
COUNTED_REACTIONS = f"""
    SELECT {bucket('as_of')} AS b, channel, kind, sum(total) AS n FROM reaction_counters
    WHERE community_id = :c AND as_of >= :start AND as_of < :end GROUP BY 1, 2, 3
"""


# Each row is a period's, a channel's or a kind's sum (the other two columns are NULL): the
# periods from the daily rollup, the channels and kinds from whole months and the days around.
REACTIONS = (
    "SELECT b, CAST(NULL AS text) AS channel, CAST(NULL AS text) AS kind, added, sum(n) AS n"
    " FROM (SELECT {bucket} AS b, added, n FROM reaction_days WHERE {in_window}) r GROUP BY 1, 4"
    " UNION ALL SELECT CAST(NULL AS date), channel, kind, added, sum(n) FROM ("
    + whole_months_and_days("channel, kind, added, n", "reaction")
    + ") m GROUP BY GROUPING SETS ((channel, added), (kind, added))"
)
ADDED = f"SELECT sum(n) FROM ({whole_months_and_days('n', 'reaction', 'added')}) a"
COUNTED_SPLITS = "GROUP BY GROUPING SETS ((b), (channel), (kind))"
VIEWS_TOTAL = (f"SELECT sum(n) FROM (SELECT n FROM view_days WHERE {IN_WINDOW} UNION ALL"
               " SELECT total FROM view_counters WHERE community_id = :c AND as_of >= :start"
               " AND as_of < :end) v")
# The summary's, in one round trip: added, counted, and the first reactions' quantiles.
REACTION_TOTALS = (
    f"SELECT ({ADDED}) AS added, (SELECT sum(total) FROM reaction_counters"
    " WHERE community_id = :c AND as_of >= :start AND as_of < :end) AS counted, f.f50"
    f" FROM ({FIRSTS}) f"
)
# One statement, one round trip: members' own reactions (`own`), platforms' counts (`counted`,
# per period, channel or kind) and the window's views (`views`, one row).
REACTION_COUNTS = (
    "SELECT 'own' AS src, b, channel, kind, added, n FROM (" + REACTIONS + ") o UNION ALL"
    " SELECT 'counted', b, channel, kind, NULL, n FROM (SELECT b, channel, kind, sum(n) AS n"
    f" FROM ({COUNTED_REACTIONS}) c {COUNTED_SPLITS}) s UNION ALL"
    f" SELECT 'views', NULL, NULL, NULL, NULL, ({VIEWS_TOTAL})"
)


async def views_kpi(
    conn: AsyncConnection, community: str, w: Window, limit: int = 100
) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    per_period: dict[str, int] = defaultdict(int)
    per_channel: dict[str, int] = defaultdict(int)
    views = VIEWS.format(bucket=day_bucket(w.granularity), in_window=IN_WINDOW,
                         as_of=bucket("as_of"))
    top: list[tuple[int, str]] = []
    for b, channel, content_id, n in await conn.execute(text(VIEWS_AND_TOP.format(views=views)),
                                                        {**params, "limit": limit}):
        if content_id is None:
            per_period[b.isoformat()] += int(n)
            per_channel[channel] += int(n)
        else:
            top.append((-int(n), content_id))
    return {
        "total": sum(per_channel.values()),
        "periods": [{"start": s.isoformat(), "views": per_period.get(s.isoformat(), 0)}
                    for s in w.buckets()],
        "channels": dict(sorted(per_channel.items())),
        "content": [{"content_id": content_id, "views": -n} for n, content_id in sorted(top)],
    }


async def views_total(conn: AsyncConnection, community: str, w: Window) -> int:
    total = await conn.scalar(text(VIEWS_TOTAL), {"c": community, **w.params()})
    return int(total or 0)


async def reactions_totals(
    conn: AsyncConnection, community: str, w: Window, views: int
) -> dict[str, Any]:
    """The summary's numbers alone: added, reactions per view, median time to first reaction."""
    row = (await conn.execute(text(REACTION_TOTALS), {"c": community, **w.params()})).one()
    added = int(row.added or 0)
    return {"added": added, "per_view": ratio(added + int(row.counted or 0), views),
            "first_reaction_median_seconds": as_float(row.f50)}


async def reactions_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    # Postgres sums per period, per channel and per kind: a year of days by channel and kind
    # is ~13k rows Python would spend longer on than the database does.
    found: dict[str, list[Any]] = {"own": [], "counted": [], "views": []}
    for r in await conn.execute(text(REACTION_COUNTS.format(
            bucket=day_bucket(w.granularity), in_window=IN_WINDOW)), params):
        found[r.src].append(r)
    rows, snapshots = found["own"], found["counted"]
    added = sum(int(r.n) for r in rows if r.kind is not None and r.added)
    removed = sum(int(r.n) for r in rows if r.kind is not None and not r.added)
    counted = sum(int(r.n) for r in snapshots if r.kind is not None)
    views = int(found["views"][0].n or 0)
    return {
        "added": added, "removed": removed, "net": added - removed, "counted": counted,
        "total": added - removed + counted,
        "per_view": ratio(added + counted, views),
        "periods": _periods(w, rows, snapshots),
        "channels": _split(rows, snapshots, "channel"),
        "kinds": _split(rows, snapshots, "kind"),
        "speed": await speed_kpi(conn, community, w),
    }


def _periods(w: Window, rows: list[Any], snapshots: list[Any]) -> list[dict[str, Any]]:
    per: dict[date, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0,
                                                          "counted": 0})
    for r in rows:
        if r.b is not None:
            per[r.b]["added" if r.added else "removed"] += int(r.n)
    for r in snapshots:
        if r.b is not None:
            per[r.b]["counted"] += int(r.n)
    return [{"start": s.isoformat(), "added": per[s]["added"], "removed": per[s]["removed"],
             "counted": per[s]["counted"]} for s in w.buckets()]


def _split(rows: list[Any], snapshots: list[Any], attribute: str) -> dict[str, dict[str, int]]:
    split: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0,
                                                            "counted": 0})
    for r in rows:
        if getattr(r, attribute) is not None:
            split[getattr(r, attribute)]["added" if r.added else "removed"] += int(r.n)
    for r in snapshots:
        if getattr(r, attribute) is not None:
            split[getattr(r, attribute)]["counted"] += int(r.n)
    return dict(sorted(split.items()))
