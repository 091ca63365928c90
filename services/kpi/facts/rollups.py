"""Zone-keyed daily rollups: per (community, zone, local day, dimensions) the sum of what the
fact tables hold, for every zone listed in `kpi_zones` for the community.

Each rollup is one `INSERT ... SELECT ... GROUP BY` over a source of fact rows. The projection
runs it over the rows its batch actually inserted (the fact insert's `RETURNING`, so a fact
already stored adds nothing) in the batch's transaction; a new zone's backfill runs it over the
fact table. Both add (`n = n + excluded.n`), and every rolled-up fact is insert-only and never
changes its day, channel or kind, so the rollup equals a `GROUP BY` over the facts at any moment:
exact and independent of the order facts arrive in.

Distinct members per period are not additive: facts/active.py derives them from pairs of each
member's consecutive active days.

Serialisation, per community: a backfill holds the community's advisory lock exclusively and
the projection holds it shared (for every community in its batch) before it writes, so a batch
either committed before the backfill read the facts or sees the zone and adds its own deltas;
never both, never neither. Other communities' batches never wait for a backfill.

A community has at most MAX_ZONES zones: each costs a backfill and a share of every batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.facts import (
    active,
    backlog,
    changing,
    content_views,
    counters,
    retention,
    speed,
)
from services.kpi.facts.common import execute

log = logging.getLogger(__name__)

PERIODS = ("day", "week", "month")
MAX_ZONES = 8
# A hash collision only makes two communities wait for each other's backfill.
LOCK_KEY = "hashtext('kpi_zones:' || {})"
# Sorted, so two batches always take their communities' locks in the same order. Each community
# is also told on channel `:n`: Postgres holds a NOTIFY back until commit wherever the
# transaction sends it, so sending it here rather than last saves the batch a round trip. With
# `:plans` the batch's `plan_cache_mode` (SET LOCAL), in the same round trip.
LOCK_FOR_BATCH = (
    f"SELECT count(pg_advisory_xact_lock_shared({LOCK_KEY.format('c')})),"
    " count(pg_notify(:n, c) IS NULL), set_config('plan_cache_mode',"
    " coalesce(CAST(:plans AS text), current_setting('plan_cache_mode')), true)"
    " FROM (SELECT DISTINCT unnest(CAST(:cs AS text[])) AS c ORDER BY 1) cs"
)
LOCK_FOR_BACKFILL = f"SELECT pg_advisory_xact_lock({LOCK_KEY.format(':c')})"


class TooManyZones(Exception):
    """The community already has MAX_ZONES zones."""


async def lock_for_batch(
    conn: AsyncConnection, communities: list[str], channel: str, plans: str | None = None
) -> None:
    """The communities' zone locks, shared; `channel` notified of each community at commit;
    `plans`, if given, the transaction's plan_cache_mode."""
    await execute(conn, LOCK_FOR_BATCH, {"cs": communities, "n": channel, "plans": plans})


@dataclass(frozen=True, slots=True)
class Rollup:
    table: str
    source: str  # the fact table it sums
    keys: tuple[str, ...]
    value: str
    time: str = "at"
    # "month": the table's `month` holds the local month's first day (a year is 12 rows, not 365)
    grain: str = "day"

    def sql(self, source: str, zone_filter: str) -> str:
        keys = ", ".join(self.keys)
        local = f"s.{self.time} AT TIME ZONE z.tz"
        start = f"date_trunc('month', {local})" if self.grain == "month" else local
        return (
            f"INSERT INTO {self.table} AS r (community_id, tz, {self.grain}, {keys}, n)"
            f" SELECT s.community_id, z.tz, CAST({start} AS date),"
            f" {', '.join('s.' + k for k in self.keys)},"
            f" {self.value} FROM {source} s JOIN kpi_zones z ON z.community_id = s.community_id"
            f" WHERE {zone_filter}"
            f" GROUP BY 1, 2, 3, {', '.join(str(i + 4) for i in range(len(self.keys)))}"
            f" ON CONFLICT (community_id, tz, {self.grain}, {keys})"
            " DO UPDATE SET n = r.n + excluded.n"
        )


ROLLUPS = (
    Rollup("member_days", "member_changes", ("channel", "kind"), "count(*)"),
    Rollup("view_days", "views", ("channel",), "sum(s.count)"),
    Rollup("content_view_days", "views", ("content_id",), "sum(s.count)"),
    Rollup("reaction_days", "reaction_facts", ("channel", "kind", "added"), "count(*)"),
    Rollup("attendance_days", "attendances", ("channel", "walk_in"), "count(*)",
           "checked_in_at"),
    # Whole months of a window read these (queries/zones.py: whole_months_and_days).
    Rollup("member_months", "member_changes", ("channel", "kind"), "count(*)", grain="month"),
    Rollup("content_view_months", "views", ("content_id",), "sum(s.count)", grain="month"),
    Rollup("reaction_months", "reaction_facts", ("channel", "kind", "added"), "count(*)",
           grain="month"),
    Rollup("view_months", "views", ("channel",), "sum(s.count)", grain="month"),
    # Reactions per day alone (queries/content.py: a year's periods read 730 rows, not ~10,000).
    Rollup("reaction_total_days", "reaction_facts", ("added",), "count(*)"),
)
TABLES = (*(r.table for r in ROLLUPS), "active_counts", "active_gaps",
          "reaction_delay_days", "reaction_delay_months", "content_first_reactions",
          "registration_days", "feedback_days",
          "retention_months", "role_holders")
# Events and feedback (facts/participants.py, facts/backlog.py).
TABLES += ("event_participants", "feedback_waits", "feedback_open")
TABLES += counters.TABLES
TABLES += ("content_view_totals", "first_reaction_delays", "reaction_delay_month_groups")


def deltas(fact_table: str) -> list[str]:
    """CTEs adding the rows of CTE `ins` (the batch's inserted facts) to every rollup of
    `fact_table`, for every registered zone of their community (`:periods`: PERIODS)."""
    ctes = [f"d{i} AS ({r.sql('ins', 'TRUE')})"
            for i, r in enumerate(ROLLUPS) if r.source == fact_table]
    if fact_table == "activity":
        ctes += active.delta_ctes("ins")
    if fact_table == "views":
        ctes += content_views.VIEW_DELTAS
    return ctes + speed.deltas(fact_table)


async def backfill(conn: AsyncConnection, community: str, tz: str) -> bool:
    """Register `tz` for the community and fill its rollups from the fact tables; False (and no
    work) when another query registered it first. Call in a transaction of its own."""
    await conn.execute(text(LOCK_FOR_BACKFILL), {"c": community})
    zones = set((await conn.execute(
        text("SELECT tz FROM kpi_zones WHERE community_id = :c"), {"c": community})).scalars())
    if tz in zones:
        return False
    if len(zones) >= MAX_ZONES:
        raise TooManyZones(sorted(zones))
    registered = await conn.scalar(
        text("INSERT INTO kpi_zones VALUES (:c, :tz) ON CONFLICT DO NOTHING RETURNING 1"),
        {"c": community, "tz": tz},
    )
    if not registered:
        return False
    zone = "z.community_id = :c AND z.tz = :tz AND s.community_id = :c"
    params = {"c": community, "tz": tz, "periods": list(PERIODS)}
    statements = [(r.table, r.sql(r.source, zone)) for r in ROLLUPS]
    statements += [("active_gaps", active.BACKFILL), ("active_counts", active.COUNTS_BACKFILL),
                   ("reaction_delays", speed.backfill_sql()),  # days and months
                   *changing.backfill(zone).items(),
                   ("retention_months", retention.backfill_sql(zone))]
    statements += [*backlog.backfill(zone).items()]
    statements += [*counters.backfill(zone).items(), *counters.backfill(zone, "months").items()]
    await conn.execute(text("SET LOCAL work_mem = '64MB'"))  # one big GROUP BY each
    for table, sql in statements:
        started = time.perf_counter()
        await conn.execute(text(sql), params)
        log.info("backfilled %s for %s in %s: %.1f s", table, community, tz,
                 time.perf_counter() - started)
    return True
