"""Feedback waits and backlog, exact, from the rollups of facts/backlog.py.

The rollups give every rank exactly (how many waits lie in each bin, how many open feedback
were submitted on each day); the one or two bins or days holding the ranks a quantile needs are
then read from `feedback` itself (a few hundred rows by index), so the median and p90 are the
very values `percentile_cont` would give over all rows, and the SLA count is exact too: bins
below the SLA's are within it, bins above are not, the SLA's own bin is counted row by row."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.facts.backlog import WAIT_BIN, wait_bin
from services.kpi.queries.window import Window, whole_months
from services.kpi.queries.zones import months_and_days

PAD = timedelta(hours=3)  # wider than any zone's daylight-saving shift: the index range
WAIT_BINS = (
    "SELECT d.bin, sum(d.n) AS n, min(s.bin) AS sla_bin FROM ("
    + months_and_days("bin, n FROM feedback_waits", "community_id = :c AND tz = :tz")
    + ") d CROSS JOIN (SELECT " + wait_bin("extract(epoch FROM CAST(:sla AS interval))")
    + " AS bin) s GROUP BY d.bin ORDER BY d.bin"
)
WAITS_IN = (
    f"SELECT {WAIT_BIN} AS bin,"
    " CAST(extract(epoch FROM answered_at - submitted_at) AS float8) AS s,"
    " answered_at - submitted_at <= :sla AS within FROM feedback"
    f" WHERE community_id = :c AND {WAIT_BIN} = ANY(:bins)"
    " AND submitted_at IS NOT NULL AND answered_at IS NOT NULL"
    " AND submitted_at >= :lo AND submitted_at < :hi"
    " AND CAST(submitted_at AT TIME ZONE :tz AS date) BETWEEN :first AND :last"
)
OPEN_DAYS = (
    "SELECT submitted, sum(n) AS n FROM feedback_open WHERE community_id = :c AND tz = :tz"
    " AND resolved > :last AND submitted <= :last GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1"
)
OPEN_ON = (
    "SELECT d.day, extract(epoch FROM CAST(:end AS timestamptz) - f.submitted_at) AS age"
    " FROM unnest(CAST(:days AS date[])) AS d(day) JOIN feedback f ON f.community_id = :c"
    " AND f.submitted_at >= CAST(d.day AS timestamp) AT TIME ZONE :tz - interval '3 hours'"
    " AND f.submitted_at < CAST(d.day AS timestamp) AT TIME ZONE :tz + interval '27 hours'"
    " AND CAST(f.submitted_at AT TIME ZONE :tz AS date) = d.day"
    " AND coalesce(CAST(f.resolved_at AT TIME ZONE :tz AS date), date 'infinity') > :last"
    " ORDER BY d.day, f.submitted_at"
)
Counts = list[tuple[Any, int]]  # (bin or day, rows in it), in order


async def waits(
    conn: AsyncConnection, community: str, w: Window, sla: timedelta
) -> dict[str, Any]:
    """Feedback submitted in the window and answered: the median and p90 of the time to first
    answer, and how many were answered within `sla`."""
    m1, m2 = whole_months(w.first, w.last)
    params = {"c": community, **w.params(), "m1": m1, "m2": m2, "sla": sla}
    rows = list(await conn.execute(text(WAIT_BINS), params))
    bins: Counts = [(int(r.bin), int(r.n)) for r in rows if r.n]
    total = sum(n for _, n in bins)
    if not total:
        return {"answered": 0, "within_sla": 0, "median": None, "p90": None}
    ranks = {rank for p in (0.5, 0.9) for rank in _ranks(p, total)}
    sla_bin = int(rows[0].sla_bin)
    needed = {_locate(bins, rank)[0] for rank in ranks} | {sla_bin}
    inside: dict[int, list[float]] = {b: [] for b in needed}
    within = sum(n for b, n in bins if b < sla_bin)
    for r in await conn.execute(text(WAITS_IN), {
        **params, "bins": sorted(needed), "lo": w.start - PAD, "hi": w.end + PAD,
    }):
        inside[int(r.bin)].append(float(r.s))
        within += int(r.bin == sla_bin and r.within)
    values = {b: sorted(v) for b, v in inside.items()}
    return {"answered": total, "within_sla": within,
            "median": _quantile(0.5, total, lambda k: _value(bins, values, k)),
            "p90": _quantile(0.9, total, lambda k: _value(bins, values, k))}


async def backlog(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """Feedback submitted and not resolved at the end of the window, and the median and max of
    their age then (seconds)."""
    params = {"c": community, **w.params()}
    days: Counts = [(r.submitted, int(r.n)) for r in await conn.execute(text(OPEN_DAYS), params)]
    total = sum(n for _, n in days)
    # Ages in ascending order are submissions in descending order: age rank k is position
    # total - 1 - k among the submissions.
    positions = {total - 1 - k for k in _ranks(0.5, total)} | ({0} if total else set())
    needed = sorted({_locate(days, p)[0] for p in positions})
    ages: dict[Any, list[float]] = {d: [] for d in needed}
    for r in await conn.execute(text(OPEN_ON), {**params, "days": needed}):
        ages[r.day].append(float(r.age))
    return {"open": total,
            "median_age": _quantile(0.5, total,
                                    lambda k: _value(days, ages, total - 1 - k)),
            "max_age": _value(days, ages, 0) if total else None}


def _ranks(p: float, total: int) -> Iterable[int]:
    """The ranks `percentile_cont(p)` reads over `total` values (0-based, ascending)."""
    if not total:
        return ()
    rank = p * (total - 1)
    return {math.floor(rank), math.ceil(rank)}


def _quantile(p: float, total: int, at: Any) -> float | None:
    """`percentile_cont(p)` as Postgres computes it (float8_lerp), `at(k)` the k-th value."""
    if not total:
        return None
    rank = p * (total - 1)
    first, second = math.floor(rank), math.ceil(rank)
    low = float(at(first))
    if first == second:
        return low
    return low + (rank - first) * (float(at(second)) - low)


def _locate(counts: Counts, position: int) -> tuple[Any, int]:
    """The bin or day holding `position` (0-based over all rows in order), and the position's
    offset in it."""
    seen = 0
    for key, n in counts:
        if position < seen + n:
            return key, position - seen
        seen += n
    raise IndexError(position)


def _value(counts: Counts, rows: dict[Any, list[float]], position: int) -> float:
    key, offset = _locate(counts, position)
    return rows[key][offset]
