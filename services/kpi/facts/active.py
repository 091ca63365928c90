"""Distinct active members over any window, exactly, without counting distinct ids at query
time: `active_gaps` counts, per (zone, active day d, previous active day p of the same member),
the members whose active days include d with p the one before it ('-infinity' for their first).
A member is active in [a, b] exactly when one of their days d in [a, b] has p < a (their first
day in the window), so the window's distinct count is the sum of n over d in [a, b], p < a.
Rows are also kept per month of d, so a year reads twelve months of rows, not 365 days.

When a batch adds new active days (the rows `active_seen` actually inserted), only pairs around
them change: the days' old neighbours (the member's nearest stored day before and after each
new one) and the new days form a short sequence S per member. The change is the consecutive
pairs of S with the new days minus those of S's old days alone: a pair of old days left
consecutive by S is either a true pair (it cancels) or spans a gap S does not see (both sides
then share it, and it cancels too). Exact in any arrival order; a community's batches are
applied one after another (docs/adr/0005). A count may reach 0 and stay as a row.

`active_counts` (distinct members per whole day, week and month) follows from the same pairs: a
member is active in period P exactly once with a day d in P whose previous day p is before P's
start, so the count is the sum of n over those (d, p), and each batch adds that sum over its pair
changes. `active_seen` therefore keeps only days: week and month rows per member would cost every
batch two more inserts per new active day."""

from __future__ import annotations

FIRST = "date '-infinity'"
PERIODS = "(VALUES ('day'), ('month')) AS p(period)"


def _gaps_insert(changes: str) -> str:
    """Add `changes` (community_id, tz, day, previous, n) per day and per month of the day."""
    # In key order: a batch's ~2,700 upserts then walk the key's pages in order, not at random.
    return (
        "INSERT INTO active_gaps AS g (community_id, tz, period, start, previous, n)"
        " SELECT community_id, tz, p.period,"
        " CAST(date_trunc(p.period, CAST(day AS timestamp)) AS date), previous, sum(n)"
        f" FROM {changes} ch CROSS JOIN {PERIODS} GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0"
        " ORDER BY 1, 2, 3, 4, 5 ON CONFLICT (community_id, tz, period, start, previous)"
        " DO UPDATE SET n = g.n + excluded.n"
    )


def _neighbour(order: str, compare: str) -> str:
    return (
        "(SELECT start FROM active_seen a WHERE a.community_id = nd.community_id"
        " AND a.tz = nd.tz AND a.member_id = nd.member_id AND a.period = 'day'"
        f" AND a.start {compare} nd.day ORDER BY a.start {order} LIMIT 1)"
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


BOTH_DAYS = "(SELECT * FROM old_days UNION SELECT * FROM new_days)"


def delta_ctes(source: str) -> list[str]:
    """CTEs adding the active days of `source` rows (community_id, member_id, at) to
    `active_seen`, `active_gaps` and `active_counts`, in every registered zone of their
    community. `active_seen` as the statement sees it does not hold the new days yet."""
    return [
        "new_days AS (INSERT INTO active_seen (community_id, tz, period, start, member_id)"
        " SELECT DISTINCT s.community_id, z.tz, 'day', CAST(s.at AT TIME ZONE z.tz AS date),"
        f" s.member_id FROM {source} s JOIN kpi_zones z ON z.community_id = s.community_id"
        " ON CONFLICT DO NOTHING RETURNING community_id, tz, member_id, start AS day)",
        "old_days AS (SELECT DISTINCT nd.community_id, nd.tz, nd.member_id, o.day FROM new_days nd"
        f" CROSS JOIN LATERAL ({_neighbour('DESC', '<')} UNION ALL {_neighbour('ASC', '>')})"
        " AS o(day))",
        f"gap_changes AS (SELECT *, 1 AS n FROM ({_pairs(BOTH_DAYS)}) a"
        f" UNION ALL SELECT *, -1 FROM ({_pairs('old_days')}) b)",
        f"gaps AS ({_gaps_insert('gap_changes')})",
        f"counted AS ({_counts_insert('gap_changes')})",
    ]


def _all_pairs(where: str) -> str:
    days = ("(SELECT community_id, tz, member_id, start AS day FROM active_seen"
            f" WHERE period = 'day' AND {where})")
    return f"(SELECT community_id, tz, day, previous, 1 AS n FROM ({_pairs(days)}) s)"


# A new zone has no rows yet: plain inserts in key order (member, day), no conflict checks (much
# faster at scale); its days, then the pairs of every member's days in order, then the counts.
SEEN_BACKFILL = (
    "INSERT INTO active_seen (community_id, tz, period, start, member_id)"
    " SELECT DISTINCT :c, :tz, 'day', CAST(s.at AT TIME ZONE :tz AS date) AS start, s.member_id"
    " FROM activity s WHERE s.community_id = :c ORDER BY 5, 4"
)
BACKFILL = _gaps_insert(_all_pairs("community_id = :c AND tz = :tz"))
COUNTS_BACKFILL = _counts_insert(
    "(SELECT community_id, tz, start AS day, previous, n FROM active_gaps"
    " WHERE community_id = :c AND tz = :tz AND period = 'day')"
)
# Every registered zone at once (the migration that introduces the table).
FROM_SEEN = _gaps_insert(_all_pairs("TRUE"))
