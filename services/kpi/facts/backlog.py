"""Feedback waits and backlog, rolled up so the feedback KPI reads a few thousand rows, not every
feedback of the window (queries/backlog.py reads them and stays exact).

- `feedback_waits`: per (zone, day and month of submission, wait bin) the feedback answered,
  the wait being seconds from submission to first answer. Bins are 5 % geometric and signed
  (an answer stamped before its submission has a negative wait), numbered so that a longer wait
  never gets a smaller bin: a rank and an SLA boundary fall in one bin, whose few feedback rows
  the query then reads from `feedback` (by the index on `WAIT_BIN`) to get the exact value.
- `feedback_open`: per (zone, local day of submission, local day of resolution, 'infinity'
  while unresolved) the feedback submitted. Open at the end of day L = submitted on a day
  <= L and resolved on a day > L; those rows are read by the resolution day.

A feedback row changes (submitted, answered, resolved, in any order), so these are kept like
facts/changing.py's rollups: the upsert's statement adds what the rows count after (`ins`) minus
before (`old`, the same snapshot)."""

from __future__ import annotations

from services.kpi.facts.common import ZONES, signed

WAIT_BASE = 1.05
# |wait| bins start at this offset so that a sub-second wait still gets a positive number.
WAIT_OFFSET = 1000
_WAIT = "extract(epoch FROM {rows}answered_at - {rows}submitted_at)"


def wait_bin(wait: str) -> str:
    """The bin of a wait in seconds (a numeric expression): monotone in the wait."""
    return (f"CAST(CASE WHEN {wait} = 0 THEN 0 ELSE sign({wait})"
            f" * (floor(ln(abs({wait})) / ln({WAIT_BASE})) + {WAIT_OFFSET}) END AS int)")


# Of a `feedback` row: the query and the indexes (migrations kpi0011, kpi0016) must spell them
# alike. The index in wait order within a bin (kpi0016) hands the rank's value over without
# sorting the bin.
WAIT_BIN = wait_bin(_WAIT.format(rows=""))
WAIT_SECONDS = f"CAST({_WAIT.format(rows='')} AS float8)"
_ANSWERED = (f"SELECT community_id, submitted_at, {WAIT_BIN} AS bin FROM {{rows}}"
             " WHERE submitted_at IS NOT NULL AND answered_at IS NOT NULL")
_SUBMITTED = ("SELECT community_id, submitted_at, resolved_at FROM {rows}"
              " WHERE submitted_at IS NOT NULL")


def _waits(source: str, value: str, zone_filter: str) -> str:
    return (
        "INSERT INTO feedback_waits AS r (community_id, tz, period, start, bin, n)"
        " SELECT s.community_id, z.tz, p.period,"
        " CAST(date_trunc(p.period, s.submitted_at AT TIME ZONE z.tz) AS date), s.bin, "
        + value + f" FROM {source} s {ZONES}"
        " CROSS JOIN unnest(ARRAY['day', 'month']) AS p(period)"
        f" WHERE {zone_filter} GROUP BY 1, 2, 3, 4, 5 HAVING {value} <> 0"
        " ON CONFLICT (community_id, tz, period, start, bin) DO UPDATE SET n = r.n + excluded.n"
    )


def _open(source: str, value: str, zone_filter: str) -> str:
    return (
        "INSERT INTO feedback_open AS r (community_id, tz, submitted, resolved, n)"
        " SELECT s.community_id, z.tz, CAST(s.submitted_at AT TIME ZONE z.tz AS date),"
        " coalesce(CAST(s.resolved_at AT TIME ZONE z.tz AS date), date 'infinity'), "
        + value + f" FROM {source} s {ZONES}"
        f" WHERE {zone_filter} GROUP BY 1, 2, 3, 4 HAVING {value} <> 0"
        " ON CONFLICT (community_id, tz, submitted, resolved) DO UPDATE SET n = r.n + excluded.n"
    )


# CTEs over `ins` and `old`, the batch's feedback rows after and before its upsert.
DELTAS = [f"cw AS ({_waits(signed(_ANSWERED), 'sum(s.sign)', 'TRUE')})",
          f"co AS ({_open(signed(_SUBMITTED), 'sum(s.sign)', 'TRUE')})"]


def backfill(zone_filter: str) -> dict[str, str]:
    """Both rollups from the feedback stored, for the zones `zone_filter` picks."""
    return {
        "feedback_waits": _waits(f"({_ANSWERED.format(rows='feedback')})",
                                 "count(*)", zone_filter),
        "feedback_open": _open(f"({_SUBMITTED.format(rows='feedback')})", "count(*)",
                               zone_filter),
    }
