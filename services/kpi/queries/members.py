"""Members: total at each period's end, joined, rejoined, left, net growth, growth and churn
rates (both over the total at the period's start), overall and per channel. Read from the daily
rollup `member_days` in the window's zone."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import DAY_BUCKET, IN_WINDOW

KINDS = ("joined", "rejoined", "left")
NONE = dict.fromkeys(KINDS, 0)


async def members_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """Postgres sums the rollup per period and per channel (Python would spend more time on a
    year of days per channel than the database does)."""
    params = {"c": community, **w.params()}
    overall: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for r in await conn.execute(
        text(f"SELECT {DAY_BUCKET} AS b, kind, sum(n) AS n FROM member_days"
             f" WHERE {IN_WINDOW} GROUP BY 1, 2"),
        params,
    ):
        overall[r.b][r.kind] = int(r.n)
    moved: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    opening: dict[str, int] = defaultdict(int)
    for r in await conn.execute(
        text(
            "SELECT channel, day < :first AS before, kind, sum(n) AS n FROM member_days"
            " WHERE community_id = :c AND tz = :tz AND day <= :last GROUP BY 1, 2, 3"
        ),
        params,
    ):
        if r.before:
            opening[r.channel] += -int(r.n) if r.kind == "left" else int(r.n)
        else:
            moved[r.channel][r.kind] = int(r.n)
    channels = sorted(set(moved) | set(opening))
    return {
        **_series(w, overall, sum(opening.values())),
        "channels": {ch: _totals(moved[ch], opening.get(ch, 0)) for ch in channels},
    }


async def members_totals(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """The window's headline numbers alone (the summary's): what `members_kpi` answers at the
    top level, from one sum of the rollup before and within the window."""
    sums, opening = dict.fromkeys(KINDS, 0), 0
    for r in await conn.execute(
        text("SELECT day < :first AS before, kind, sum(n) AS n FROM member_days"
             " WHERE community_id = :c AND tz = :tz AND day <= :last GROUP BY 1, 2"),
        {"c": community, **w.params()},
    ):
        if r.before:
            opening += -int(r.n) if r.kind == "left" else int(r.n)
        else:
            sums[r.kind] = int(r.n)
    return _totals(sums, opening)


def _totals(sums: dict[str, int], opening: int) -> dict[str, Any]:
    """What `_series` answers for the whole window, without the periods (a channel's split)."""
    net = sums["joined"] + sums["rejoined"] - sums["left"]
    return {"total": opening + net, **sums, "net": net,
            "growth_rate": ratio(net, opening), "churn_rate": ratio(sums["left"], opening)}


def _series(w: Window, moves: dict[date, dict[str, int]], opening: int) -> dict[str, Any]:
    periods, total = [], opening
    for start in w.buckets():
        counts = moves.get(start, NONE)
        net = counts["joined"] + counts["rejoined"] - counts["left"]
        periods.append({
            "start": start.isoformat(), **counts, "net": net, "total": total + net,
            "growth_rate": ratio(net, total), "churn_rate": ratio(counts["left"], total),
        })
        total += net
    sums = {k: sum(p[k] for p in periods) for k in (*KINDS, "net")}
    return {
        "total": total, **sums,
        "growth_rate": ratio(sums["net"], opening), "churn_rate": ratio(sums["left"], opening),
        "periods": periods,
    }
