"""Members: total at each period's end, joined, rejoined, left, net growth, growth and churn
rates (both over the total at the period's start), overall and per channel. The periods read the
daily rollup `member_days` in the window's zone; the channels' window and opening totals read
whole months from `member_months` and only the days around them from `member_days`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import IN_WINDOW, before_window, day_bucket, whole_months_and_days

KINDS = ("joined", "rejoined", "left")
NONE = dict.fromkeys(KINDS, 0)

# One row per period, its kinds side by side (a third of the rows to read).
PERIODS = (
    "SELECT {bucket} AS b, coalesce(sum(n) FILTER (WHERE kind = 'joined'), 0),"
    " coalesce(sum(n) FILTER (WHERE kind = 'rejoined'), 0),"
    " coalesce(sum(n) FILTER (WHERE kind = 'left'), 0) FROM member_days"
    " WHERE {in_window} GROUP BY 1"
)
# Per channel and kind: what moved in the window (`before` false) and what came before it.
CHANNELS = (
    "SELECT channel, false AS before, kind, sum(n) AS n FROM ("
    + whole_months_and_days("channel, kind, n", "member")
    + ") w GROUP BY 1, 3 UNION ALL SELECT channel, true, kind, sum(n) FROM ("
    + before_window("channel, kind, n", "member")
    + ") o GROUP BY 1, 3"
)
# One round trip: the channels' rows, then the periods' (`channel` NULL).
CHANNELS_AND_PERIODS = (
    "SELECT channel, before, kind, n, NULL AS b, NULL AS joined, NULL AS rejoined, NULL AS left_"
    " FROM (" + CHANNELS + ") c UNION ALL SELECT NULL, NULL, NULL, NULL, p.* FROM ("
    + PERIODS + ") p"
)


async def members_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """Postgres sums the rollups per period and per channel (Python would spend more time on a
    year of days per channel than the database does)."""
    overall: dict[date, dict[str, int]] = {}
    moved: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    opening: dict[str, int] = defaultdict(int)
    sql = CHANNELS_AND_PERIODS.format(bucket=day_bucket(w.granularity), in_window=IN_WINDOW)
    for channel, before, kind, n, b, joined, rejoined, left in await conn.execute(
            text(sql), {"c": community, **w.params()}):
        if channel is None:
            overall[b] = {"joined": int(joined), "rejoined": int(rejoined), "left": int(left)}
        elif before:
            opening[channel] += -int(n) if kind == "left" else int(n)
        else:
            moved[channel][kind] = int(n)
    channels = sorted(set(moved) | set(opening))
    return {
        **_series(w, overall, sum(opening.values())),
        "channels": {ch: _totals(moved[ch], opening.get(ch, 0)) for ch in channels},
    }


# The window's headline numbers in one row, no channel split: joined, rejoined, left within
# the window, and the total before it (bigint: numeric would come back as Decimal).
TOTALS = (
    "SELECT " + ", ".join(
        f"CAST(coalesce(sum(n) FILTER (WHERE NOT before AND kind = '{kind}'), 0) AS bigint)"
        for kind in KINDS)
    + ", CAST(coalesce(sum(CASE WHEN kind = 'left' THEN -n ELSE n END) FILTER (WHERE before), 0)"
    " AS bigint) FROM (SELECT false AS before, kind, n FROM ("
    + whole_months_and_days("kind, n", "member") + ") w UNION ALL SELECT true, kind, n FROM ("
    + before_window("kind, n", "member") + ") o) m"
)
TOTALS_SQL = text(TOTALS)  # built once: text() scans for parameters each time


async def members_totals(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """The window's headline numbers alone (the summary's): what `members_kpi` answers at the
    top level, from one sum of the rollups before and within the window."""
    row = (await conn.execute(TOTALS_SQL, {"c": community, **w.params()})).one()
    return totals_of(row)


def totals_of(row: Sequence[Any]) -> dict[str, Any]:
    """`TOTALS`' row (joined, rejoined, left, opening) as the answer's numbers."""
    joined, rejoined, left, opening = row
    return _totals({"joined": joined, "rejoined": rejoined, "left": left}, opening)


def _totals(sums: dict[str, int], opening: int) -> dict[str, Any]:
    """What `_series` answers for the whole window, without the periods (a channel's split)."""
    net = sums["joined"] + sums["rejoined"] - sums["left"]
    return {"total": opening + net, **sums, "net": net,
            "growth_rate": ratio(net, opening), "churn_rate": ratio(sums["left"], opening)}


def _series(w: Window, moves: dict[date, dict[str, int]], opening: int) -> dict[str, Any]:
    periods, total = [], opening
    sums = dict.fromkeys((*KINDS, "net"), 0)
    for start in w.buckets():
        counts = moves.get(start, NONE)
        joined, rejoined, left = counts["joined"], counts["rejoined"], counts["left"]
        net = joined + rejoined - left
        periods.append({
            "start": start.isoformat(), "joined": joined, "rejoined": rejoined, "left": left,
            "net": net, "total": total + net,
            "growth_rate": net / total if total else None,
            "churn_rate": left / total if total else None,
        })
        total += net
        sums["joined"] += joined
        sums["rejoined"] += rejoined
        sums["left"] += left
        sums["net"] += net
    return {
        "total": total, **sums,
        "growth_rate": ratio(sums["net"], opening), "churn_rate": ratio(sums["left"], opening),
        "periods": periods,
    }
