"""The KPI projection: facts in, fact tables out, and the zone-keyed daily rollups
(facts/rollups.py) updated in the same statements. Each batch is folded in memory per family and
written set-based; the queries read the rollups or compute from the fact tables at read time, so
the answer does not depend on the order in which facts of different aggregates arrived."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.kpi.facts import engagement, events, identity, members, rollups

SCHEMA = "kpi"
# Woken listeners re-query; the notification carries only the community id (a hint, DESIGN §4).
CHANNEL = "kpi_changed"

# A batch of at most this many facts runs its statements on their generic plans. Postgres plans
# a prepared statement again for each execution's values while that plan looks cheaper than the
# generic one, and for one or two facts it always does: re-planning the rollups' CTEs every batch
# cost Postgres more CPU than running them (docs/benchmarks.md, eighth session). The generic plan
# assumes 10 rows per `unnest`, the estimate the statements' key lookups were written for.
GENERIC_PLAN_FACTS = 10

TABLES = (
    "member_changes", "members", "member_roles", "erased_members", "activity", "content",
    "views", "view_counters", "reaction_facts", "reaction_counters", "community_events",
    "registrations", "attendances", "first_attendances", "event_registrations", "followups",
    "feedback", *rollups.TABLES,
)


class KpiProjection:
    name = "kpi"
    schema = SCHEMA
    durable_commits = False  # rebuilt from the stream (`gatherly replay kpi`)
    # Stored by view id, ON CONFLICT DO NOTHING, the rollups fed only by rows actually inserted.
    single_event_types = frozenset({"gatherly.content.viewed"})
    fact_types: frozenset[str] | None = None  # every fact

    async def apply(self, conn: AsyncConnection, batch: list[Envelope]) -> None:
        communities = sorted({e.community_id for e in batch})
        # Before any write: a zone's backfill either saw this batch or this batch sees the zone.
        # The listeners' notification goes with it (sent at commit, as it would be if last).
        plans = "force_generic_plan" if len(batch) <= GENERIC_PLAN_FACTS else None
        await rollups.lock_for_batch(conn, communities, CHANNEL, plans)
        ids = await identity.identities(conn, batch)
        # Rewrite what is stored before writing this batch, whose rows already carry the
        # pseudonym: the other way round, a row of both kinds for one key would collide.
        await identity.erase(conn, batch)
        await members.apply(conn, batch, ids)
        await engagement.apply(conn, batch)
        await events.apply(conn, batch, ids)
        await identity.record_activity(conn, batch, ids)

    async def reset(self, conn: AsyncConnection) -> None:
        # The zones stay registered: replaying the facts refills their rollups through the same
        # deltas the live projection adds.
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))


def build_projection() -> KpiProjection:
    return KpiProjection()
