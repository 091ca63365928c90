"""Reaction speed, kept small enough to answer in milliseconds at millions of reactions.

- `content_first_reactions`: per content item the moment of its first added reaction, merged
  with `least` (commutative, so exact whatever the arrival order). Time to first reaction is
  `percentile_cont` over it joined with the content published in the window: exact.
- `reaction_delay_days` and `reaction_delay_months`: per (zone, local day or month of the
  content's publication, delay bin) the number of added reactions, the delay being seconds from
  publication to the reaction. Bins are 1 % geometric (`BIN_BASE`), so every delay in a bin is
  within 0.5 % of the bin's representative (its geometric middle) and the median over all
  reactions is within 0.5 % of the exact one (see queries/speed.py). The months have a table of
  their own: a year's ~10,000 monthly rows lie on a few dozen pages, not scattered among the
  daily rows. A pair counts once: added by whichever of the reaction and the content is stored
  second (the other's delta finds no partner yet). A community's batches are applied one after
  another (docs/adr/0005), so no pair is missed or counted twice.
- `reaction_delay_month_groups`: the monthly counts again per group of 2^GROUP_BITS consecutive
  bins (`bin >> GROUP_BITS`, monotone for signed bins too), so the median's rank is found in a
  few hundred rows a year and only the bins of the one or two groups holding it are read.
- `first_reaction_delays`: per published content item its publication and the seconds to its
  first added reaction (NULL while it has none), so the exact quantiles read one row per item
  and no join. Whichever comes second sets the delay: the content joins the stored first
  reactions, a reaction batch lowers the delay of stored content (`least`, idempotent), so it
  equals the first reaction's delay whatever the arrival order.
"""

from __future__ import annotations

BIN_BASE = 1.01
# Bins of |delay| are numbered from this offset so a sub-second delay still gets a positive
# number; the sign carries the sign of the delay (a reaction stamped before its publication).
BIN_OFFSET = 10000
DELAY = "extract(epoch FROM r.at - c.published_at)"
# 32 bins a group: a year is ~12 x 35 group rows and ~12 x 64 bin rows, not ~9,500 bin rows.
GROUP_BITS = 5
BIN = (f"CAST(CASE WHEN {DELAY} = 0 THEN 0 ELSE sign({DELAY})"
       f" * (floor(ln(abs({DELAY})) / ln({BIN_BASE})) + {BIN_OFFSET}) END AS int)")


def _pairs(pairs: str, zone_filter: str) -> str:
    """The added (reaction `r`, content `c`) pairs `pairs` joins, per zone, local day of
    publication and delay bin."""
    return (
        "SELECT c.community_id, z.tz, CAST(c.published_at AT TIME ZONE z.tz AS date) AS day,"
        f" {BIN} AS bin, count(*) AS n FROM {pairs}"
        " JOIN kpi_zones z ON z.community_id = c.community_id"
        f" WHERE {zone_filter} GROUP BY 1, 2, 3, 4"
    )


# Every stored pair (a backfill: one hash join over both tables).
STORED_PAIRS = ("content c JOIN reaction_facts r ON r.community_id = c.community_id"
                " AND r.content_id = c.content_id AND r.added")
# A batch's pairs, each of its rows looking its partners up by key. `OFFSET 0` keeps the
# subquery a per-row index lookup: joined flat, the planner (which guesses 10 rows for `ins`)
# hashed the batch and scanned the whole other table each batch, growing with the stream.
NEW_CONTENT_PAIRS = (
    "ins c CROSS JOIN LATERAL (SELECT r.at FROM reaction_facts r"
    " WHERE r.community_id = c.community_id AND r.content_id = c.content_id AND r.added"
    " OFFSET 0) r"
)
NEW_REACTION_PAIRS = (
    "(SELECT * FROM ins WHERE added) r CROSS JOIN LATERAL (SELECT c.community_id,"
    " c.published_at FROM content c WHERE c.community_id = r.community_id"
    " AND c.content_id = r.content_id OFFSET 0) c"
)


# The pairs (CTE `sp`) added to the daily and the monthly bins: the join runs once for both.
ADD_DAYS = (
    "INSERT INTO reaction_delay_days AS t (community_id, tz, day, bin, n) SELECT * FROM sp"
    " ON CONFLICT (community_id, tz, day, bin) DO UPDATE SET n = t.n + excluded.n"
)
ADD_MONTHS = (
    "INSERT INTO reaction_delay_months AS t (community_id, tz, month, bin, n)"
    " SELECT community_id, tz, CAST(date_trunc('month', day) AS date), bin, sum(n) FROM sp"
    " GROUP BY 1, 2, 3, 4"
    " ON CONFLICT (community_id, tz, month, bin) DO UPDATE SET n = t.n + excluded.n"
)

ADD_GROUPS = (
    "INSERT INTO reaction_delay_month_groups AS t (community_id, tz, month, grp, n)"
    f" SELECT community_id, tz, CAST(date_trunc('month', day) AS date), bin >> {GROUP_BITS},"
    " sum(n) FROM sp GROUP BY 1, 2, 3, 4"
    " ON CONFLICT (community_id, tz, month, grp) DO UPDATE SET n = t.n + excluded.n"
)
# The groups from the stored monthly bins (a migration).
GROUPS_FROM_MONTHS = (
    "INSERT INTO reaction_delay_month_groups"
    f" SELECT community_id, tz, month, bin >> {GROUP_BITS}, sum(n) FROM reaction_delay_months"
    " GROUP BY 1, 2, 3, 4"
)


def delays_sql(pairs: str, zone_filter: str) -> str:
    """One statement adding the pairs `pairs` joins to the three tables."""
    return (f"WITH sp AS ({_pairs(pairs, zone_filter)}),"
            f" sd AS ({ADD_DAYS}), sg AS ({ADD_GROUPS}) {ADD_MONTHS}")


# Every community's first reactions from what is stored (a migration, a bulk load).
FIRSTS_FROM_FACTS = (
    "INSERT INTO content_first_reactions SELECT community_id, content_id, min(at)"
    " FROM reaction_facts WHERE added GROUP BY 1, 2"
)
FIRSTS = (
    "INSERT INTO content_first_reactions AS t (community_id, content_id, first_at)"
    " SELECT community_id, content_id, min(at) FROM ins WHERE added GROUP BY 1, 2"
    " ON CONFLICT (community_id, content_id)"
    " DO UPDATE SET first_at = excluded.first_at WHERE excluded.first_at < t.first_at"
)


SECONDS = "CAST(extract(epoch FROM {first} - {published}) AS double precision)"
# Content published, with the delay to its first reaction stored so far (the statement's snapshot:
# every earlier batch, and this batch's reactions come after its content).
PUBLISHED = (
    "INSERT INTO first_reaction_delays AS t (community_id, content_id, published_at,"
    f" first_seconds) SELECT i.community_id, i.content_id, i.published_at,"
    f" {SECONDS.format(first='f.first_at', published='i.published_at')} FROM ins i"
    " LEFT JOIN content_first_reactions f"
    " ON f.community_id = i.community_id AND f.content_id = i.content_id"
    " ON CONFLICT (community_id, content_id) DO NOTHING"
)
# A reaction batch's first reactions lower the delay of content already stored; a row is
# written only when its delay drops (no new row version for every reacted item).
REACTED = (
    "UPDATE first_reaction_delays t"
    f" SET first_seconds = {SECONDS.format(first='b.first_at', published='t.published_at')}"
    " FROM (SELECT community_id, content_id, min(at) AS first_at FROM ins WHERE added"
    " GROUP BY 1, 2) b WHERE t.community_id = b.community_id AND t.content_id = b.content_id"
    f" AND (t.first_seconds IS NULL"
    f" OR {SECONDS.format(first='b.first_at', published='t.published_at')} < t.first_seconds)"
)
# Every community's, from what is stored (a migration, a bulk load; after FIRSTS_FROM_FACTS).
FIRST_DELAYS_FROM_FACTS = (
    "INSERT INTO first_reaction_delays SELECT c.community_id, c.content_id, c.published_at,"
    f" {SECONDS.format(first='f.first_at', published='c.published_at')} FROM content c"
    " LEFT JOIN content_first_reactions f"
    " ON f.community_id = c.community_id AND f.content_id = c.content_id"
)


def _delta(pairs: str) -> list[str]:
    return [f"sp AS ({_pairs(pairs, 'TRUE')})", f"sd AS ({ADD_DAYS})",
            f"sm AS ({ADD_MONTHS})", f"sg AS ({ADD_GROUPS})"]


def deltas(fact_table: str) -> list[str]:
    """CTEs over `ins` (the batch's inserted rows of `fact_table`)."""
    if fact_table == "reaction_facts":
        return [f"sf AS ({FIRSTS})", f"fr AS ({REACTED})", *_delta(NEW_REACTION_PAIRS)]
    if fact_table == "content":
        return [f"fp AS ({PUBLISHED})", *_delta(NEW_CONTENT_PAIRS)]
    return []


def backfill_sql() -> str:
    """A new zone's delays, from every stored pair of the community (`:c`, `:tz`)."""
    return delays_sql(STORED_PAIRS, "z.community_id = :c AND z.tz = :tz AND c.community_id = :c")
