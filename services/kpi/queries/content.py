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
from services.kpi.queries.zones import (
    IN_WINDOW,
    ZONED,
    NewZone,
    day_bucket,
    whole_months_and_days,
)

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
# member and no moment of reacting, so it is not in the reaction speed. Read once (a CTE) for
# the periods and the splits alike.
COUNTED = ("SELECT day, channel, kind, n FROM reaction_counter_days"
           " WHERE {in_window} AND snapshots > 0")
PART = "CASE WHEN added THEN 'added' ELSE 'removed' END"
PARTS = ("added", "removed", "counted")


def _sums() -> str:
    """Each part's sum (bigint: numeric would come back as Decimal)."""
    return ", ".join(f"CAST(coalesce(sum(n) FILTER (WHERE part = '{part}'), 0) AS bigint)"
                     f" AS {part}" for part in PARTS)


def _arrays(key: str) -> str:
    """The splits by `key` (channel or kind) as arrays in key order, one per part."""
    return ", ".join([f"array_agg({key} ORDER BY {key}) FILTER (WHERE by_{key}) AS {key}s"] + [
        f"array_agg({part} ORDER BY {key}) FILTER (WHERE by_{key}) AS {key}_{part}"
        for part in PARTS])


# Per period, members' own reactions from the daily totals and platforms' counts; as arrays over
# the window's periods (`:buckets`, zeros included).
PERIODS = (
    "SELECT " + ", ".join(f"array_agg(coalesce(t.{part}, 0) ORDER BY p.b) AS {part}"
                          for part in PARTS)
    + " FROM unnest(CAST(:buckets AS date[])) AS p(b) LEFT JOIN (SELECT b, " + _sums()
    + " FROM (SELECT {bucket} AS b, part, n FROM (SELECT day, " + PART + " AS part, n"
    " FROM reaction_total_days WHERE {in_window} UNION ALL"
    " SELECT day, 'counted', n FROM counted) d) s GROUP BY 1) t USING (b)"
)
# Per channel and per kind: members' own reactions from whole months and the days around,
# platforms' counts from their days; as arrays (one per part) in channel and kind order.
SPLITS = (
    "SELECT " + _arrays("channel") + ", " + _arrays("kind") + " FROM (SELECT channel, kind,"
    " GROUPING(kind) = 1 AS by_channel, GROUPING(channel) = 1 AS by_kind, " + _sums()
    + " FROM (SELECT channel, kind, " + PART + " AS part, n FROM ("
    + whole_months_and_days("channel, kind, added, n", "reaction")
    + ") m UNION ALL SELECT channel, kind, 'counted', n FROM counted) s"
    " GROUP BY GROUPING SETS ((channel), (kind))) g"
)
SPEED_COLUMNS = ("published", "reacted", "f50", "f90", "below", "total", "bins", "ns")
# The reactions' whole answer in one round trip and one row (as ~375 rows, reading them took
# Python about as long as Postgres took to sum them): the periods, the splits, the window's
# views and the speed (queries/speed.py); and whether the zone is registered (zones.ZONED).
REACTIONS = (
    f"WITH counted AS MATERIALIZED ({{counted}}) SELECT {ZONED} AS zoned, p.*, g.*,"
    " ({views_total}) AS views, "
    + ", ".join(f"s.{c}" for c in SPEED_COLUMNS) + f" FROM ({PERIODS}) p, ({SPLITS}) g, ({SPEED}) s"
)
# Whole months from the monthly rollups (a year: 12 rows per channel, not ~365).
VIEWS_TOTAL = (f"SELECT sum(n) FROM ({whole_months_and_days('n', 'view')} UNION ALL"
               f" {whole_months_and_days('n', 'view_counter')}) v")


# Built once each (text() scans a statement for its parameters every time it is built).
VIEWS_TOTAL_SQL = text(VIEWS_TOTAL)


@cache
def _views(granularity: str) -> TextClause:
    views = VIEWS.format(bucket=day_bucket(granularity), in_window=IN_WINDOW)
    return text(VIEWS_AND_TOP.format(views=views))


@cache
def _reactions(granularity: str) -> TextClause:
    return text(REACTIONS.format(
        bucket=day_bucket(granularity), in_window=IN_WINDOW, views_total=VIEWS_TOTAL,
        counted=COUNTED.format(in_window=IN_WINDOW)))


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
    """Raises NewZone when the window's zone is not registered (its rollups not filled)."""
    # Postgres sums per period, per channel and per kind: a year of days by channel and kind
    # is ~13k rows Python would spend longer on than the database does.
    buckets = w.buckets()
    row = (await conn.execute(_reactions(w.granularity),
                              {"c": community, **w.params(), "buckets": buckets})).one()
    if not row.zoned:
        raise NewZone
    channels, kinds = _split(row, "channel"), _split(row, "kind")
    added, removed, counted = (sum(c[k] for c in kinds.values()) for k in PARTS)
    return {
        "added": added, "removed": removed, "net": added - removed, "counted": counted,
        "total": added - removed + counted,
        "per_view": ratio(added + counted, int(row.views or 0)),
        "periods": [{"start": s.isoformat(), "added": a, "removed": r, "counted": n}
                    for s, a, r, n in zip(buckets, row.added, row.removed, row.counted,
                                          strict=True)],
        "channels": dict(sorted(channels.items())),
        "kinds": dict(sorted(kinds.items())),
        "speed": speed_of(row),
    }


def _split(row: Any, by: str) -> dict[str, dict[str, int]]:
    """One split's arrays (`channels`, `channel_added`, ..., or the kinds') as {key: counts}."""
    columns = (getattr(row, f"{by}_{part}") or () for part in PARTS)
    return {key: dict(zip(PARTS, counts, strict=True))
            for key, *counts in zip(getattr(row, f"{by}s") or (), *columns, strict=True)}
