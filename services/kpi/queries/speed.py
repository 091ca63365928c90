"""Reaction speed for content published in the window (facts/speed.py keeps what it reads).

- Time to first reaction (median, p90): exact, `percentile_cont` over each published content
  item's first reaction (one row per content item).
- Time to every reaction (median): within 0.5 % (the issue allows 2 %), from the 1 % geometric
  delay bins. The exact median needs every delay sorted (2M at 1M members, seconds); the bins
  give each delay's rank exactly and its value within half a bin, and `percentile_cont`'s
  interpolation between two values each within 0.5 % stays within 0.5 % (same sign). The
  ranks are found among groups of 32 bins (a year: ~430 monthly group rows), then only the bins
  of the one or two groups holding them are read (~400 rows, not ~9,500)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.facts.speed import BIN_BASE, BIN_OFFSET, GROUP_BITS
from services.kpi.queries.window import Window
from services.kpi.queries.zones import whole_months_and_days

# One row per content item published in the window, its first reaction's delay stored beside it
# (facts/speed.py); both quantiles from one sort (an array of fractions; NULLs are no reaction).
FIRSTS = """
    SELECT published, reacted, q[1] AS f50, q[2] AS f90 FROM (
    SELECT count(*) AS published, count(first_seconds) AS reacted,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY first_seconds) AS q
    FROM first_reaction_delays
    WHERE community_id = :c AND published_at >= :start AND published_at < :end) q
"""
DELAY_BINS = (
    "SELECT bin, CAST(sum(n) AS bigint) AS n FROM ("
    + whole_months_and_days("bin, n", "reaction_delay", "bin >= p.first AND bin < p.last")
    + ") d GROUP BY bin"
)
ZONE = "community_id = :c AND tz = :tz"
# The window's added reactions per group of bins: whole months from their groups, the days
# around grouped here (facts/speed.py: GROUP_BITS).
GROUPS = (
    f"SELECT grp, sum(n) AS n FROM (SELECT grp, n FROM reaction_delay_month_groups WHERE {ZONE}"
    " AND month >= :m1 AND month < :m2 UNION ALL"
    f" SELECT bin >> {GROUP_BITS}, n FROM reaction_delay_days WHERE {ZONE}"
    " AND day >= :first AND day < :m1 UNION ALL"
    f" SELECT bin >> {GROUP_BITS}, n FROM reaction_delay_days WHERE {ZONE}"
    " AND day >= :m2 AND day <= :last) g GROUP BY grp"
)
# The groups holding the median's ranks ⌊(total-1)/2⌋ and the next one (`percentile_cont`
# interpolates between them): their bins [first, last), the delays below them and the total.
MEDIAN_GROUPS = (
    f"WITH g AS ({GROUPS}), c AS (SELECT grp, n, sum(n) OVER (ORDER BY grp) - n AS below,"
    " sum(n) OVER () AS total FROM g), r AS (SELECT floor(0.5 * (total - 1)) AS low FROM c"
    f" LIMIT 1) SELECT min(grp) << {GROUP_BITS} AS first, (max(grp) + 1) << {GROUP_BITS} AS last,"
    " min(below) AS below, max(total) AS total FROM c, r"
    " WHERE c.below <= r.low + 1 AND c.below + c.n > r.low"
)

# One round trip, one row: the first reactions, then the bins of the median's groups as two
# arrays in bin order (as rows, reading them took Python longer than Postgres), the delays
# below them and the window's total.
SPEED = (
    "SELECT f.published, f.reacted, f.f50, f.f90, p.below, p.total, b.bins, b.ns FROM ("
    + FIRSTS + f") f, ({MEDIAN_GROUPS}) p LEFT JOIN LATERAL"
    " (SELECT array_agg(bin ORDER BY bin) AS bins, array_agg(n ORDER BY bin) AS ns FROM ("
    + DELAY_BINS + ") d) b ON TRUE"
)


SPEED_SQL = text(SPEED)


async def speed_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    return speed_of((await conn.execute(SPEED_SQL, {"c": community, **w.params()})).one())


def speed_of(row: Any) -> dict[str, Any]:
    """The answer from SPEED's row (queries/content.py reads it in the counts' round trip)."""
    firsts = _firsts(row)
    bins = list(zip(row.bins or (), row.ns or (), strict=True))
    median = quantile(bins, 0.5, int(row.total), int(row.below)) if row.total else None
    return {
        "content_published": firsts["published"], "content_reacted": firsts["reacted"],
        "first_reaction_seconds": {"median": firsts["median"], "p90": firsts["p90"]},
        "all_reactions_seconds": {"median": median},
    }


def _firsts(row: Any) -> dict[str, Any]:
    """Content published in the window, how many got a reaction, and the exact median and p90
    of the time to their first one."""
    return {"published": int(row.published), "reacted": int(row.reacted),
            "median": as_float(row.f50), "p90": as_float(row.f90)}


def representative(bin_: int) -> float:
    """The geometric middle of a bin: within 0.5 % of every delay in it."""
    if bin_ == 0:
        return 0.0
    return math.copysign(BIN_BASE ** (abs(bin_) - BIN_OFFSET + 0.5), bin_)


def quantile(
    bins: list[tuple[int, int]], p: float, total: int | None = None, below: int = 0
) -> float | None:
    """`percentile_cont(p)` over the values the (bin, count) pairs stand for, in bin order; or,
    with `total` and `below`, over `total` values of which `below` lie before these bins (the
    bins must hold the ranks p needs)."""
    total = sum(n for _, n in bins) if total is None else total
    if not total:
        return None
    rank = p * (total - 1)
    low = math.floor(rank)
    value_low = _at(bins, low - below)
    value_high = _at(bins, min(low + 1, total - 1) - below)
    return value_low + (rank - low) * (value_high - value_low)


def _at(bins: list[tuple[int, int]], rank: int) -> float:
    seen = 0
    for bin_, n in bins:
        seen += n
        if rank < seen:
            return representative(bin_)
    raise IndexError(rank)


def as_float(value: Any) -> float | None:
    return None if value is None else float(value)
