"""Retention by monthly join cohort, kept so a question reads a few hundred rows, not every
member's history.

A member's cohort (per zone) is the month of their first change that is not a leave; they are a
member at the end of month M when their last change in version order among those before M's end
is not a leave (queries/beyond.py). That status is a step function of M: it can only change in a
month the member has a change in. `retention_months` keeps, per (community, zone, cohort, month),
`joined`: the members whose cohort it is (month = cohort), and `retained`: the signed count of
the cohort's members whose status turns to member (+1) or away from it (-1) in that month; the
members still in at the end of month M are the prefix sum of `retained` up to M.

A member's contribution is a function of their whole history. The projection recomputes it for
every member its batch added a change to, from the history before the batch (`was`, read in the
statement's snapshot) and after it (`was` plus the rows inserted, `ins`), and adds the
difference: an earlier join that moves the cohort, a leave stamped before the join, a change
stored twice (adds nothing) all come out exact, in any arrival order. A community's batches are
applied one after another (docs/adr/0005). A count taken back may stay as a 0 row. Erasure
renames the member in `member_changes` only; no member id is kept here."""

from __future__ import annotations

HISTORY_COLUMNS = "community_id, member_id, seq, kind, at"
_MEMBER = "PARTITION BY community_id, member_id, tz"


def contributions(rows: str, zone_filter: str, sign: int = 1) -> str:
    """(community_id, tz, cohort, month, joined, retained) of the member histories `rows`
    (HISTORY_COLUMNS), for the zones `zone_filter` picks, times `sign`."""
    # Per member, zone and month: the month's last change in version order, its seq doubled
    # plus 1 for "member", so a running max over months gives the status at each month's end.
    months = (
        "SELECT s.community_id, s.member_id, z.tz,"
        " CAST(date_trunc('month', s.at AT TIME ZONE z.tz) AS date) AS month,"
        " max(CAST(s.seq AS bigint) * 2 + CAST(s.kind <> 'left' AS int)) AS top,"
        " bool_or(s.kind <> 'left') AS joins"
        f" FROM {rows} s JOIN kpi_zones z ON z.community_id = s.community_id"
        f" WHERE {zone_filter} GROUP BY 1, 2, 3, 4"
    )
    statuses = (
        "SELECT community_id, member_id, tz, month,"
        " max(top) OVER (w ORDER BY month) % 2 AS status,"
        " min(month) FILTER (WHERE joins) OVER w AS cohort"
        f" FROM ({months}) m WINDOW w AS ({_MEMBER})"
    )
    flips = (
        "SELECT community_id, tz, cohort, month, CAST(month = cohort AS int) AS joined,"
        f" status - lag(status, 1, CAST(0 AS bigint)) OVER ({_MEMBER} ORDER BY month) AS retained"
        f" FROM ({statuses}) s WHERE cohort IS NOT NULL"
    )
    return (
        f"SELECT community_id, tz, cohort, month, {sign} * sum(joined) AS joined,"
        f" {sign} * sum(retained) AS retained FROM ({flips}) f"
        " WHERE joined <> 0 OR retained <> 0 GROUP BY 1, 2, 3, 4"
    )


def _add(source: str) -> str:
    return (
        "INSERT INTO retention_months AS r (community_id, tz, cohort, month, joined, retained)"
        " SELECT community_id, tz, cohort, month, sum(joined), sum(retained)"
        f" FROM ({source}) c GROUP BY 1, 2, 3, 4"
        " HAVING sum(joined) <> 0 OR sum(retained) <> 0"
        " ON CONFLICT (community_id, tz, cohort, month) DO UPDATE"
        " SET joined = r.joined + excluded.joined, retained = r.retained + excluded.retained"
    )


# CTEs over `ins` (the member changes a batch inserted): each touched member's contribution
# after the batch minus before it.
DELTAS = [
    "rt_members AS (SELECT DISTINCT community_id, member_id FROM ins)",
    # Each member's stored changes by key (`OFFSET 0`: joined flat, the planner hashed the
    # batch and scanned every stored change each batch).
    f"rt_was AS (SELECT c.* FROM rt_members t CROSS JOIN LATERAL (SELECT {HISTORY_COLUMNS}"
    " FROM member_changes c WHERE c.community_id = t.community_id"
    " AND c.member_id = t.member_id OFFSET 0) c)",
    f"rt_now AS (SELECT {HISTORY_COLUMNS} FROM rt_was UNION ALL"
    f" SELECT {HISTORY_COLUMNS} FROM ins)",
    "rt AS ("
    + _add(f"{contributions('rt_now', 'TRUE')} UNION ALL"
           f" {contributions('rt_was', 'TRUE', -1)}")
    + ")",
]


def backfill_sql(zone_filter: str) -> str:
    """Every member's contribution from the stored changes, for the zones `zone_filter` picks
    (a new zone: no rows yet)."""
    return _add(contributions("member_changes", zone_filter))
