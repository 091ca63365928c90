"""Reaction speed, kept small enough to answer in milliseconds at millions of reactions.

- `content_first_reactions`: per content item the moment of its first added reaction, merged
  with `least` (commutative, so exact whatever the arrival order). Time to first reaction is
  `percentile_cont` over it joined with the content published in the window: exact.
- `reaction_delays`: per (zone, day and month of the content's publication, delay bin) the number
  of added reactions, the delay being seconds from publication to the reaction. Bins are 1 %
  geometric (`BIN_BASE`), so every delay in a bin is within 0.5 % of the bin's representative
  (its geometric middle) and the median over all reactions is within 0.5 % of the exact one
  (see queries/speed.py). A pair counts once: added by whichever of the reaction and the content
  is stored second (the other's delta finds no partner yet). A community's batches are applied
  one after another (docs/adr/0005), so no pair is missed or counted twice.
"""

from __future__ import annotations

BIN_BASE = 1.01
# Bins of |delay| are numbered from this offset so a sub-second delay still gets a positive
# number; the sign carries the sign of the delay (a reaction stamped before its publication).
BIN_OFFSET = 10000
DELAY = "extract(epoch FROM r.at - c.published_at)"
BIN = (f"CAST(CASE WHEN {DELAY} = 0 THEN 0 ELSE sign({DELAY})"
       f" * (floor(ln(abs({DELAY})) / ln({BIN_BASE})) + {BIN_OFFSET}) END AS int)")
PERIODS = ("day", "month")  # a window reads whole months and the days it cuts


def delays_sql(reactions: str, content: str, zone_filter: str) -> str:
    """Add the (reaction, content) pairs of `reactions` and `content` to `reaction_delays`."""
    return (
        "INSERT INTO reaction_delays AS t (community_id, tz, period, start, bin, n)"
        " SELECT c.community_id, z.tz, p.period,"
        " CAST(date_trunc(p.period, c.published_at AT TIME ZONE z.tz) AS date),"
        f" {BIN}, count(*)"
        f" FROM {content} c JOIN {reactions} r ON r.community_id = c.community_id"
        " AND r.content_id = c.content_id AND r.added"
        " JOIN kpi_zones z ON z.community_id = c.community_id"
        f" CROSS JOIN unnest(ARRAY{list(PERIODS)}) AS p(period)"
        f" WHERE {zone_filter} GROUP BY 1, 2, 3, 4, 5"
        " ON CONFLICT (community_id, tz, period, start, bin) DO UPDATE SET n = t.n + excluded.n"
    )


# Every community's first reactions from what is stored (a migration, a bulk load).
FIRSTS_FROM_FACTS = (
    "INSERT INTO content_first_reactions SELECT community_id, content_id, min(at)"
    " FROM reaction_facts WHERE added GROUP BY 1, 2"
)
FIRSTS = (
    "INSERT INTO content_first_reactions AS t (community_id, content_id, first_at)"
    " SELECT community_id, content_id, min(at) FROM ins WHERE added GROUP BY 1, 2"
    " ON CONFLICT (community_id, content_id)"
    " DO UPDATE SET first_at = least(t.first_at, excluded.first_at)"
)


def deltas(fact_table: str) -> list[str]:
    """CTEs over `ins` (the batch's inserted rows of `fact_table`)."""
    if fact_table == "reaction_facts":
        return [f"sf AS ({FIRSTS})", f"sd AS ({delays_sql('ins', 'content', 'TRUE')})"]
    if fact_table == "content":
        return [f"sd AS ({delays_sql('reaction_facts', 'ins', 'TRUE')})"]
    return []


def backfill_sql() -> str:
    """A new zone's delays, from every stored pair of the community (`:c`, `:tz`)."""
    return delays_sql("reaction_facts", "content",
                      "z.community_id = :c AND z.tz = :tz AND c.community_id = :c")
