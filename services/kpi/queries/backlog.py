"""Feedback waits and backlog, exact, from the rollups of facts/backlog.py.

The rollups give every rank exactly (how many waits lie in each bin, how many open feedback
were submitted on each day); the one or two bins or days holding the ranks a quantile needs are
then read from `feedback` itself (a few hundred rows by index), so the median and p90 are the
very values `percentile_cont` would give over all rows, and the SLA count is exact too: bins
below the SLA's are within it, bins above are not, the SLA's own bin is counted row by row.

Two round trips: the rollups (with whatever else the caller reads from rollups, e.g. the
periods), then every value at its rank, waits and ages together."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.facts.backlog import WAIT_BIN, WAIT_SECONDS, wait_bin
from services.kpi.queries.window import Window
from services.kpi.queries.zones import months_and_days

PAD = timedelta(hours=3)  # wider than any zone's daylight-saving shift
# Answered per wait bin and open per day of submission, each as two arrays (one row).
_WAIT_BINS = (
    "SELECT array_agg(bin ORDER BY bin) AS wait_bins, array_agg(n ORDER BY bin) AS wait_counts"
    " FROM"
    " (SELECT bin, CAST(sum(n) AS bigint) AS n FROM ("
    + months_and_days("bin, n FROM feedback_waits", "community_id = :c AND tz = :tz")
    + ") d GROUP BY 1 HAVING sum(n) <> 0) b"
)
_OPEN_DAYS = (
    "SELECT array_agg(submitted ORDER BY submitted) AS open_days,"
    " array_agg(n ORDER BY submitted) AS open_counts FROM"
    " (SELECT submitted, CAST(sum(n) AS bigint) AS n FROM feedback_open"
    " WHERE community_id = :c AND tz = :tz AND resolved > :last AND submitted <= :last"
    " GROUP BY 1 HAVING sum(n) <> 0) o"
)
# `{also}`: the caller's own subquery (one row) over the same parameters.
ROLLUPS = (
    f"SELECT * FROM ({_WAIT_BINS}) w, ({_OPEN_DAYS}) o,"
    " (SELECT " + wait_bin("extract(epoch FROM CAST(:sla AS interval))") + " AS sla_bin) s,"
    " ({also}) a"
)
# Submitted on a local day of the window, as the rollup counts them; the zone's date is worked
# out only for rows within PAD of the window's edges (it is most of the cost per row).
_IN_WINDOW = (" AND submitted_at IS NOT NULL AND answered_at IS NOT NULL"
              " AND submitted_at >= :lo AND submitted_at < :hi"
              " AND (submitted_at >= :inner_lo AND submitted_at < :inner_hi"
              " OR CAST(submitted_at AT TIME ZONE :tz AS date) BETWEEN :first AND :last)")
# The waits at positions at .. at + cnt - 1 (wait order) of each bin, and how many of the
# SLA's bin are within it. A bin's rows of the window are read in wait order (kpi0016's index,
# or sorted when the planner finds the window's rows fewer), from the nearer end: `off` rows
# skipped from the start, or from the end when `rev`. Only the values travel.
_BIN_ROWS = (f"SELECT {WAIT_SECONDS} AS s FROM feedback"
             f" WHERE community_id = :c AND {WAIT_BIN} = k.key{_IN_WINDOW}")
WAITS_AT = (
    "SELECT k.key, k.at + row_number() OVER (PARTITION BY k.key, k.at ORDER BY x.s) - 1 AS pos,"
    f" x.s AS value, (SELECT count(*) FROM feedback WHERE community_id = :c"
    f" AND {WAIT_BIN} = :sla_bin{_IN_WINDOW} AND answered_at - submitted_at <= :sla) AS within"
    " FROM unnest(CAST(:bins AS int[]), CAST(:bin_offs AS int[]), CAST(:bin_cnts AS int[]),"
    " CAST(:bin_ats AS int[]), CAST(:bin_revs AS bool[])) AS k(key, off, cnt, at, rev)"
    f" CROSS JOIN LATERAL (({_BIN_ROWS} AND NOT k.rev ORDER BY 1 OFFSET k.off LIMIT k.cnt)"
    f" UNION ALL ({_BIN_ROWS} AND k.rev ORDER BY 1 DESC OFFSET k.off LIMIT k.cnt)) x"
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
    " FROM unnest(CAST(:days AS date[]), CAST(:day_offs AS int[]), CAST(:day_cnts AS int[]))"
    f" AS k(key, off, cnt) CROSS JOIN LATERAL (SELECT submitted_at AS at {_OPEN_ON}"
    " ORDER BY submitted_at LIMIT 1) lo"
    f" CROSS JOIN LATERAL (SELECT submitted_at AS at {_OPEN_ON}"
    " ORDER BY submitted_at DESC LIMIT 1) hi"
    " CROSS JOIN LATERAL (SELECT lo.at FROM generate_series(1, k.cnt) WHERE lo.at = hi.at"
    f" UNION ALL (SELECT submitted_at {_OPEN_ON} AND lo.at < hi.at"
    " AND submitted_at BETWEEN lo.at AND hi.at ORDER BY submitted_at OFFSET k.off LIMIT k.cnt)"
    ") x"
)
# Every value wanted, waits and ages alike, in one statement.
PICKS = (f"SELECT key AS bin, CAST(NULL AS date) AS day, pos, value, within FROM ({WAITS_AT}) a"
         f" UNION ALL SELECT NULL, key, pos, value, NULL FROM ({OPEN_AT}) b")
# Parsed once: text() scans a statement for its parameters each time it is built.
_PICKS = text(PICKS)
Counts = list[tuple[Any, int]]  # (bin or day, rows in it), in order
Wanted = set[tuple[Any, int]]  # (bin or day, position in it)


async def answers(
    conn: AsyncConnection, community: str, w: Window, sla: timedelta, also: str = "SELECT 1",
    **also_params: Any,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Feedback submitted in the window and answered: how many, how many within `sla`, the
    median and p90 of the time to first answer; feedback submitted and not resolved at the end
    of the window: how many, the median and max of their age then (seconds); and the row of
    `also`, a one-row subquery over the same parameters and `also_params`, read with the
    rollups."""
    params = {"c": community, **w.params(), "sla": sla}
    row = (await conn.execute(_rollups(also), {**params, **also_params})).one()
    bins: Counts = list(zip(row.wait_bins or (), row.wait_counts or (), strict=True))
    days: Counts = list(zip(row.open_days or (), row.open_counts or (), strict=True))
    answered, opened = sum(n for _, n in bins), sum(n for _, n in days)
    # The ranks of the waits; ages in ascending order are submissions in descending order: age
    # rank k is position opened - 1 - k among the submissions; the oldest is position 0.
    waits_at = {k: _locate(bins, k) for p in (0.5, 0.9) for k in _ranks(p, answered)}
    ages_at = {p: _locate(days, p) for p in {opened - 1 - k for k in _ranks(0.5, opened)}
               | ({0} if opened else set())}
    found, within = await _pick(conn, set(waits_at.values()), dict(bins), set(ages_at.values()), {
        **params, "sla_bin": row.sla_bin, "lo": w.start - PAD, "hi": w.end + PAD,
        "inner_lo": w.start + PAD, "inner_hi": w.end - PAD})
    wait, age = ({k: found[at] for k, at in ranks.items()} for ranks in (waits_at, ages_at))
    waits = {"answered": answered,
             "within_sla": sum(n for b, n in bins if b < row.sla_bin) + within,
             "median": _quantile(0.5, answered, wait.__getitem__),
             "p90": _quantile(0.9, answered, wait.__getitem__)}
    backlog = {"open": opened,
               "median_age": _quantile(0.5, opened, lambda k: age[opened - 1 - k]),
               "max_age": age[0] if opened else None}
    return waits, backlog, row


@cache
def _rollups(also: str) -> TextClause:
    return text(ROLLUPS.format(also=also))


async def _pick(
    conn: AsyncConnection, waits: Wanted, sizes: dict[Any, int], ages: Wanted,
    params: dict[str, Any],
) -> tuple[dict[tuple[Any, int], float], int]:
    """The values at the (bin, position) pairs `waits` (`sizes`: rows per bin) and the (day,
    position) pairs `ages`, one read per run of neighbouring positions, and how many of the
    SLA's bin are within it (0 if no wait is wanted)."""
    if not waits and not ages:
        return {}, 0
    bins = _spans(waits)
    # A run in a bin's upper half is read backwards: the p90 sits near its bin's end.
    revs = [2 * at + cnt > sizes[key] for key, at, cnt in bins]
    days = _spans(ages)
    rows = list(await conn.execute(_PICKS, {
        **params, "bins": [key for key, _, _ in bins],
        "bin_offs": [sizes[key] - at - cnt if rev else at
                     for (key, at, cnt), rev in zip(bins, revs, strict=True)],
        "bin_cnts": [cnt for _, _, cnt in bins], "bin_ats": [at for _, at, _ in bins],
        "bin_revs": revs, "days": [key for key, _, _ in days],
        "day_offs": [at for _, at, _ in days], "day_cnts": [cnt for _, _, cnt in days]}))
    found = {(bin if day is None else day, int(pos)): float(value)
             for bin, day, pos, value, _ in rows}
    return found, next((int(r.within) for r in rows if r.within is not None), 0)


def _spans(wanted: Wanted) -> list[tuple[Any, int, int]]:
    """(key, first position, count): neighbouring positions of a key merged."""
    spans: list[tuple[Any, int, int]] = []
    for key, pos in sorted(wanted):
        if spans and spans[-1][0] == key and spans[-1][1] + spans[-1][2] == pos:
            spans[-1] = (key, spans[-1][1], spans[-1][2] + 1)
        else:
            spans.append((key, pos, 1))
    return spans


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
