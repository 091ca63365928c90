"""Distinct active members over any window, exactly, without counting distinct ids at query
time: `active_gaps` counts, per (zone, active day d, previous active day p of the same member),
the members whose active days include d with p the one before it ('-infinity' for their first).
A member is active in [a, b] exactly when one of their days d in [a, b] has p < a (their first
day in the window), so the window's distinct count is the sum of n over d in [a, b], p < a.
Rows are also kept per month of d where p is before that month (only those can count for a
month a window holds whole), so a year reads twelve months of rows, not 365 days.

A member's active days are the local days of their `activity` minutes (one index, keyed by
member and minute, serves every zone): no table of days is kept. When a batch adds new active
days, only pairs around them change: the days' old neighbours (the member's nearest stored day
before and after each new one) and the new days form a short sequence S per member. The change
is the consecutive pairs of S with the new days minus those of S's old days alone: a pair of old
days left consecutive by S is either a true pair (it cancels) or spans a gap S does not see
(both sides then share it, and it cancels too). Exact in any arrival order; a community's
batches are applied one after another (docs/adr/0005). A count may reach 0 and stay as a row.

`active_counts` (distinct members per whole day, week and month) follows from the same pairs: a
member is active in period P exactly once with a day d in P whose previous day p is before P's
start, so the count is the sum of n over those (d, p). Summed over a batch's pair changes, that
is one per period holding a new day that holds none of the member's stored days, which the batch
counts from its new days and their neighbours alone."""

from __future__ import annotations

FIRST = "date '-infinity'"


def _gaps_insert(changes: str) -> str:
    """Add `changes` (community_id, tz, day, previous, n) per day, and per month of the day when
    the previous day is before that month."""
    # A month row is read only for a month the window holds whole (queries/beyond.py), with
    # previous < the window's first day <= the month's start: a pair inside one month never
    # counts there, so it is not written (most of a batch's month pairs, kpi0018).
    # In key order: a batch's ~2,400 upserts then walk the key's pages in order, not at random.
    # Each change's month computed once (a cross join with the periods truncated every change
    # twice, by a unit given as text).
    month = "CAST(date_trunc('month', CAST(day AS timestamp)) AS date)"
    return (
        "INSERT INTO active_gaps AS g (community_id, tz, period, start, previous, n)"
        " SELECT community_id, tz, period, start, previous, sum(n) FROM"
        f" (SELECT community_id, tz, 'day' AS period, day AS start, previous, n FROM {changes} ch"
        f" UNION ALL SELECT community_id, tz, 'month', {month}, previous, n FROM {changes} ch"
        f" WHERE previous < {month}) c"
        " GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0"
        " ORDER BY 1, 2, 3, 4, 5 ON CONFLICT (community_id, tz, period, start, previous)"
        " DO UPDATE SET n = g.n + excluded.n"
    )


def _neighbour(order: str, compare: str) -> str:
    """The local day of the member's stored minute nearest to the start of day `b.day`."""
    start = "(CAST(b.day AS timestamp) AT TIME ZONE b.tz)"
    return (
        "(SELECT CAST(a.at AT TIME ZONE b.tz AS date) FROM activity a"
        " WHERE a.community_id = b.community_id AND a.member_id = b.member_id"
        f" AND a.at {compare} {start} ORDER BY a.at {order} LIMIT 1)"
    )


def _pairs(days: str) -> str:
    return (
        f"SELECT community_id, tz, day, coalesce(lag(day) OVER (PARTITION BY community_id, tz,"
        f" member_id ORDER BY day), {FIRST}) AS previous FROM {days} x"
    )


def _counts_insert(changes: str) -> str:
    """Add `changes` (community_id, tz, day, previous, n) to `active_counts` of every period in
    `:periods` that holds the day and starts after the previous day."""
    return (
        "INSERT INTO active_counts AS a (community_id, tz, period, start, n)"
        " SELECT community_id, tz, p.period, b.start, sum(n) FROM " + changes + " ch"
        " CROSS JOIN unnest(CAST(:periods AS text[])) AS p(period) CROSS JOIN LATERAL"
        " (SELECT CAST(date_trunc(p.period, CAST(ch.day AS timestamp)) AS date) AS start) b"
        " WHERE ch.previous < b.start GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0"
        " ON CONFLICT (community_id, tz, period, start) DO UPDATE SET n = a.n + excluded.n"
    )


# A day the batch touches is new unless a stored minute falls on it: the nearest stored minutes
# either side of its start tell (and are its old neighbours if it is new). Either side, for the
# day's first minute may come before the start as computed when a zone repeats its midnight hour
# (a repeated local time is read as the later instant).
NEW = "b.day IS DISTINCT FROM b.before AND b.day IS DISTINCT FROM b.after"
# The sequence S of each member's new days and their old neighbours (disjoint: a new day is not
# stored), each day with the one before it in S.
SEQUENCE = (
    "SELECT community_id, tz, member_id, day, new, after, coalesce(lag(day) OVER (PARTITION BY"
    f" community_id, tz, member_id ORDER BY day), {FIRST}) AS previous FROM"
    " (SELECT community_id, tz, member_id, day, true AS new, after FROM new_days UNION ALL"
    " SELECT community_id, tz, member_id, day, false, NULL FROM old_days) x"
)


def _new_in_period() -> str:
    """`active_counts` of every period in `:periods` gains a member with a new day d in it when
    d is the first day of S in the period and none of the member's stored days is in it (the
    nearest stored day after d is not: one before d would come before d in S): the sum of the
    pair changes over that period, counted from S's new days alone."""
    start = "CAST(date_trunc(p.period, CAST(s.day AS timestamp)) AS date)"
    end = f"{start} + CAST('1 ' || p.period AS interval)"
    return (
        "INSERT INTO active_counts AS a (community_id, tz, period, start, n)"
        f" SELECT s.community_id, s.tz, p.period, {start}, count(*) FROM sequence s"
        " CROSS JOIN unnest(CAST(:periods AS text[])) AS p(period)"
        f" WHERE s.new AND s.previous < {start}"
        f" AND NOT coalesce(s.after >= {start} AND s.after < {end}, false)"
        " GROUP BY 1, 2, 3, 4"
        " ON CONFLICT (community_id, tz, period, start) DO UPDATE SET n = a.n + excluded.n"
    )


def delta_ctes(source: str) -> list[str]:
    """CTEs adding the active days of `source` rows (community_id, member_id, at; inserted into
    `activity` by the same statement, which therefore does not see them there) to `active_gaps`
    and `active_counts`, in every registered zone of their community."""
    return [
        "near AS (SELECT b.*, " + _neighbour("DESC", "<") + " AS before, "
        + _neighbour("ASC", ">=") + " AS after FROM (SELECT DISTINCT s.community_id, z.tz,"
        " s.member_id, CAST(s.at AT TIME ZONE z.tz AS date) AS day"
        f" FROM {source} s JOIN kpi_zones z ON z.community_id = s.community_id) b)",
        f"new_days AS (SELECT community_id, tz, member_id, day, after FROM near b WHERE {NEW})",
        "old_days AS (SELECT DISTINCT b.community_id, b.tz, b.member_id, o.day FROM near b"
        " CROSS JOIN LATERAL (VALUES (b.before), (b.after)) AS o(day)"
        f" WHERE {NEW} AND o.day IS NOT NULL)",
        f"sequence AS ({SEQUENCE})",
        "gap_changes AS (SELECT community_id, tz, day, previous, 1 AS n FROM sequence"
        f" UNION ALL SELECT *, -1 FROM ({_pairs('old_days')}) b)",
        f"gaps AS ({_gaps_insert('gap_changes')})",
        f"counted AS ({_new_in_period()})",
    ]


def _all_pairs(zone_filter: str) -> str:
    """The pairs of every member's active days in the zones `zone_filter` picks (alias `z`,
    the activity `s`)."""
    days = ("(SELECT DISTINCT s.community_id, z.tz, s.member_id,"
            " CAST(s.at AT TIME ZONE z.tz AS date) AS day FROM activity s"
            f" JOIN kpi_zones z ON z.community_id = s.community_id WHERE {zone_filter})")
    return f"(SELECT community_id, tz, day, previous, 1 AS n FROM ({_pairs(days)}) s)"


# A new zone's gaps from the community's activity, then its counts from the gaps' day rows.
BACKFILL = _gaps_insert(_all_pairs("z.community_id = :c AND z.tz = :tz AND s.community_id = :c"))
COUNTS_BACKFILL = _counts_insert(
    "(SELECT community_id, tz, start AS day, previous, n FROM active_gaps"
    " WHERE community_id = :c AND tz = :tz AND period = 'day')"
)
# Every registered zone at once (a migration; kpi0006 imports it by this name).
FROM_SEEN = _gaps_insert(_all_pairs("TRUE"))
