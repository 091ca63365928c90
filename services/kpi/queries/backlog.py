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

PAD = timedelta(hours=3)  # wider than any zone's daylight-saving shift
WAIT_BINS = (
    "SELECT d.bin, CAST(sum(d.n) AS bigint) AS n, min(s.bin) AS sla_bin FROM ("
    + months_and_days("bin, n FROM feedback_waits", "community_id = :c AND tz = :tz")
    + ") d CROSS JOIN (SELECT " + wait_bin("extract(epoch FROM CAST(:sla AS interval))")
    + " AS bin) s GROUP BY d.bin ORDER BY d.bin"
)
# Submitted on a local day of the window, as the rollup counts them; the zone's date is worked
# out only for rows within PAD of the window's edges (it is most of the cost per row).
_IN_WINDOW = (" AND submitted_at IS NOT NULL AND answered_at IS NOT NULL"
              " AND submitted_at >= :lo AND submitted_at < :hi"
              " AND (submitted_at >= :inner_lo AND submitted_at < :inner_hi"
              " OR CAST(submitted_at AT TIME ZONE :tz AS date) BETWEEN :first AND :last)")
# The waits at positions off .. off + cnt - 1 (wait order) of each bin, and how many of the
# SLA's bin are within it: Postgres sorts one bin's rows, only the values travel.
WAITS_AT = (
    "SELECT k.key, k.off + row_number() OVER (PARTITION BY k.key, k.off ORDER BY x.s) - 1 AS pos,"
    f" x.s AS value, (SELECT count(*) FROM feedback WHERE community_id = :c"
    f" AND {WAIT_BIN} = :sla_bin{_IN_WINDOW} AND answered_at - submitted_at <= :sla) AS within"
    " FROM unnest(CAST(:keys AS int[]), CAST(:offs AS int[]), CAST(:cnts AS int[]))"
    " AS k(key, off, cnt) CROSS JOIN LATERAL (SELECT"
    " CAST(extract(epoch FROM answered_at - submitted_at) AS float8) AS s FROM feedback"
    f" WHERE community_id = :c AND {WAIT_BIN} = k.key{_IN_WINDOW}"
    " ORDER BY 1 OFFSET k.off LIMIT k.cnt) x"
)
OPEN_DAYS = (
    "SELECT submitted, CAST(sum(n) AS bigint) AS n FROM feedback_open"
    " WHERE community_id = :c AND tz = :tz"
    " AND resolved > :last AND submitted <= :last GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1"
)
_OPEN_ON = (
    "FROM feedback WHERE community_id = :c"
    " AND submitted_at >= CAST(k.key AS timestamp) AT TIME ZONE :tz - interval '3 hours'"
    " AND submitted_at < CAST(k.key AS timestamp) AT TIME ZONE :tz + interval '27 hours'"
    " AND CAST(submitted_at AT TIME ZONE :tz AS date) = k.key"
    " AND coalesce(CAST(resolved_at AT TIME ZONE :tz AS date), date 'infinity') > :last"
)
# The ages of the open feedback at positions off .. off + cnt - 1 (submission order) of a day.
# The day's first and last open submission come first (an index probe each): when they are
# one instant, so is every position between, and the day's rows are not read.
OPEN_AT = (
    "SELECT k.key, k.off + row_number() OVER (PARTITION BY k.key, k.off ORDER BY x.at) - 1 AS pos,"
    " extract(epoch FROM CAST(:end AS timestamptz) - x.at) AS value"
    " FROM unnest(CAST(:keys AS date[]), CAST(:offs AS int[]), CAST(:cnts AS int[]))"
    f" AS k(key, off, cnt) CROSS JOIN LATERAL (SELECT submitted_at AS at {_OPEN_ON}"
    " ORDER BY submitted_at LIMIT 1) lo"
    f" CROSS JOIN LATERAL (SELECT submitted_at AS at {_OPEN_ON}"
    " ORDER BY submitted_at DESC LIMIT 1) hi"
    " CROSS JOIN LATERAL (SELECT lo.at FROM generate_series(1, k.cnt) WHERE lo.at = hi.at"
    f" UNION ALL (SELECT submitted_at {_OPEN_ON} AND lo.at < hi.at"
    " AND submitted_at BETWEEN lo.at AND hi.at ORDER BY submitted_at OFFSET k.off LIMIT k.cnt)"
    ") x"
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
    sla_bin = int(rows[0].sla_bin)
    ranks = {k: _locate(bins, k) for p in (0.5, 0.9) for k in _ranks(p, total)}
    found, within = await _pick(conn, WAITS_AT, set(ranks.values()), {
        **params, "sla_bin": sla_bin, "lo": w.start - PAD, "hi": w.end + PAD,
        "inner_lo": w.start + PAD, "inner_hi": w.end - PAD})
    value = {k: found[at] for k, at in ranks.items()}
    return {"answered": total,
            "within_sla": sum(n for b, n in bins if b < sla_bin) + within,
            "median": _quantile(0.5, total, value.__getitem__),
            "p90": _quantile(0.9, total, value.__getitem__)}


async def backlog(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """Feedback submitted and not resolved at the end of the window, and the median and max of
    their age then (seconds)."""
    params = {"c": community, **w.params()}
    days: Counts = [(r.submitted, int(r.n)) for r in await conn.execute(text(OPEN_DAYS), params)]
    total = sum(n for _, n in days)
    if not total:
        return {"open": 0, "median_age": None, "max_age": None}
    # Ages in ascending order are submissions in descending order: age rank k is position
    # total - 1 - k among the submissions; the oldest is position 0.
    at = {p: _locate(days, p) for p in {total - 1 - k for k in _ranks(0.5, total)} | {0}}
    found, _ = await _pick(conn, OPEN_AT, set(at.values()), params)
    age = {p: found[a] for p, a in at.items()}
    return {"open": total,
            "median_age": _quantile(0.5, total, lambda k: age[total - 1 - k]),
            "max_age": age[0]}


async def _pick(
    conn: AsyncConnection, sql: str, wanted: set[tuple[Any, int]], params: dict[str, Any]
) -> tuple[dict[tuple[Any, int], float], int]:
    """The values at the (bin or day, position) pairs `wanted`, one read per run of neighbouring
    positions, and the statement's `within` (0 if none)."""
    if not wanted:
        return {}, 0
    spans: list[tuple[Any, int, int]] = []  # (key, first position, count): neighbours merged
    for key, pos in sorted(wanted):
        if spans and spans[-1][0] == key and spans[-1][1] + spans[-1][2] == pos:
            spans[-1] = (key, spans[-1][1], spans[-1][2] + 1)
        else:
            spans.append((key, pos, 1))
    rows = list(await conn.execute(text(sql), {
        **params, "keys": [k for k, _, _ in spans], "offs": [o for _, o, _ in spans],
        "cnts": [n for _, _, n in spans]}))
    return ({(r.key, int(r.pos)): float(r.value) for r in rows},
            int(getattr(rows[0], "within", 0) or 0))


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
