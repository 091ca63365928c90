"""Content views (events and imported counters) and reactions (members' own facts and platforms'
anonymous counts): counts per period, channel and kind, reaction speed, reactions per view.

Reaction speed: queries/speed.py (time to first reaction exact, to every reaction within 0.5 %)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.speed import SPEED, speed_of
from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import IN_WINDOW, day_bucket, whole_months_and_days

# Views come from the daily rollups; a counter snapshot counts on the local day of its `as_of`
# (only each (content, counter)'s latest one is kept: facts/counters.py rolls them up per day).
VIEWS = """
    SELECT {bucket} AS b, channel, n FROM view_days WHERE {in_window}
    UNION ALL
    SELECT {bucket}, channel, n FROM view_counter_days WHERE {in_window} AND snapshots > 0
"""
# The most viewed content: an item whose span of view moments the window holds whole has all
# its views in it, `content_view_totals.n` (one row each; facts/content_views.py). The items
# the window cuts (`cut`) are summed as before: whole months from `content_view_months`, the
# days around from `content_view_days`, and their latest snapshots in the window.
SPANS = ("FROM content_view_totals"
         " WHERE community_id = :c AND first_at < :end AND last_at >= :start")
CUT = f"SELECT array_agg(content_id) AS ids {SPANS} AND (first_at < :start OR last_at >= :end)"
CUT_IDS = "content_id = ANY(CAST((SELECT ids FROM cut) AS text[]))"
CONTENT_VIEWS = (
    f"(SELECT content_id, n {SPANS} AND first_at >= :start AND last_at < :end"
    " ORDER BY n DESC, content_id LIMIT :limit) UNION ALL SELECT content_id, sum(n) FROM ("
    + whole_months_and_days("content_id, n", "content_view", CUT_IDS)
    + " UNION ALL SELECT content_id, total FROM view_counters WHERE community_id = :c"
    f" AND {CUT_IDS} AND as_of >= :start AND as_of < :end) c GROUP BY 1"
)

# One round trip: views per period and per channel (`content_id` NULL; one of `b`, `channel`
# NULL too), then the most viewed content items (a UNION keeps no order: Python sorts them
# again, most viewed first, then id).
VIEWS_AND_TOP = (
    f"WITH cut AS ({CUT}) SELECT b, channel, CAST(NULL AS text) AS content_id, sum(n) AS n"
    " FROM ({views}) v GROUP BY GROUPING SETS ((b), (channel)) UNION ALL"
    " (SELECT NULL, NULL, content_id, n FROM (" + CONTENT_VIEWS + ") t"
    " ORDER BY 4 DESC, 3 LIMIT :limit)"
)

# A platform's anonymous count: only each (content, counter, kind)'s latest snapshot is kept, and
# it counts on the local day of its `as_of` (rolled up per day: facts/counters.py; a day no
# snapshot is on any more has 0 of them and adds no channel or kind). It has no
# member and no moment of reacting, so it is not in the reaction speed.
COUNTED = ("SELECT {bucket} AS b, channel, kind, 'counted' AS part, n"
           " FROM reaction_counter_days WHERE {in_window} AND snapshots > 0")
PART = "CASE WHEN added THEN 'added' ELSE 'removed' END"
SUMS = ", ".join(f"coalesce(sum(n) FILTER (WHERE part = '{part}'), 0) AS {part}"
                 for part in ("added", "removed", "counted"))
# One round trip, one row per period, per channel and per kind, added, removed and counted side
# by side: members' own reactions per period from the daily totals, per channel and kind from
# whole months and the days around; platforms' counts from their snapshots.
REACTION_COUNTS = (
    f"SELECT b, CAST(NULL AS text) AS channel, CAST(NULL AS text) AS kind, {SUMS},"
    f" CAST(NULL AS numeric) AS views FROM (SELECT {{bucket}} AS b, {PART} AS part, n"
    " FROM reaction_total_days WHERE {in_window} UNION ALL SELECT b, part, n FROM ({counted}) c) p"
    f" GROUP BY 1 UNION ALL SELECT NULL, channel, kind, {SUMS}, NULL FROM ("
    f"SELECT channel, kind, {PART} AS part, n FROM ("
    + whole_months_and_days("channel, kind, added, n", "reaction")
    + ") m UNION ALL SELECT channel, kind, part, n FROM ({counted}) c) s"
    " GROUP BY GROUPING SETS ((channel), (kind))"
)
SPEED_COLUMNS = ("published", "reacted", "f50", "f90", "below", "total", "bins", "ns")
# The reactions' whole answer in one round trip: the counts, then one row with the window's
# views and the speed (queries/speed.py).
REACTIONS = (
    f"SELECT *, {', '.join(f'NULL AS {c}' for c in SPEED_COLUMNS)} FROM ({REACTION_COUNTS}) r"
    " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, ({views_total}),"
    f" {', '.join('s.' + c for c in SPEED_COLUMNS)} FROM ({SPEED}) s"
)
VIEWS_TOTAL = (f"SELECT sum(n) FROM (SELECT n FROM view_days WHERE {IN_WINDOW} UNION ALL"
               f" SELECT n FROM view_counter_days WHERE {IN_WINDOW}) v")


# Built once each (text() scans a statement for its parameters every time it is built).
VIEWS_TOTAL_SQL = text(VIEWS_TOTAL)


@cache
def _views(granularity: str) -> TextClause:
    views = VIEWS.format(bucket=day_bucket(granularity), in_window=IN_WINDOW)
    return text(VIEWS_AND_TOP.format(views=views))


@cache
def _reactions(granularity: str) -> TextClause:
    bucket = day_bucket(granularity)
    return text(REACTIONS.format(
        bucket=bucket, in_window=IN_WINDOW, views_total=VIEWS_TOTAL,
        counted=COUNTED.format(bucket=bucket, in_window=IN_WINDOW)))


async def views_kpi(
    conn: AsyncConnection, community: str, w: Window, limit: int = 100
) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    per_period: dict[date, int] = defaultdict(int)
    per_channel: dict[str, int] = defaultdict(int)
    top: list[tuple[int, str]] = []
    for b, channel, content_id, n in await conn.execute(_views(w.granularity),
                                                        {**params, "limit": limit}):
        if content_id is not None:
            top.append((-int(n), content_id))
        elif b is not None:
            per_period[b] += int(n)
        else:
            per_channel[channel] += int(n)
    return {
        "total": sum(per_channel.values()),
        "periods": [{"start": s.isoformat(), "views": per_period.get(s, 0)}
                    for s in w.buckets()],
        "channels": dict(sorted(per_channel.items())),
        "content": [{"content_id": content_id, "views": -n} for n, content_id in sorted(top)],
    }


async def views_total(conn: AsyncConnection, community: str, w: Window) -> int:
    total = await conn.scalar(VIEWS_TOTAL_SQL, {"c": community, **w.params()})
    return int(total or 0)


async def reactions_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    # Postgres sums per period, per channel and per kind: a year of days by channel and kind
    # is ~13k rows Python would spend longer on than the database does.
    periods: dict[date, dict[str, int]] = {}
    splits: dict[str, dict[str, dict[str, int]]] = {"channels": {}, "kinds": {}}
    views, speed = 0, {}
    for row in await conn.execute(_reactions(w.granularity), {"c": community, **w.params()}):
        b, channel, kind, added, removed, counted, viewed = row[:7]
        counts = {"added": int(added or 0), "removed": int(removed or 0),
                  "counted": int(counted or 0)}
        if b is not None:
            periods[b] = counts
        elif channel is not None:
            splits["channels"][channel] = counts
        elif kind is not None:
            splits["kinds"][kind] = counts
        else:
            views, speed = int(viewed or 0), speed_of(row)
    added, removed, counted = (sum(c[k] for c in splits["kinds"].values())
                               for k in ("added", "removed", "counted"))
    none = {"added": 0, "removed": 0, "counted": 0}
    return {
        "added": added, "removed": removed, "net": added - removed, "counted": counted,
        "total": added - removed + counted,
        "per_view": ratio(added + counted, views),
        "periods": [{"start": s.isoformat(), **periods.get(s, none)} for s in w.buckets()],
        "channels": dict(sorted(splits["channels"].items())),
        "kinds": dict(sorted(splits["kinds"].items())),
        "speed": speed,
    }
