"""KPI projections: facts in, counters out. Each batch is folded in memory, then upserted once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope

SCHEMA = "kpi"

MEMBER_FACTS = {
    "gatherly.member.joined": "joined",
    "gatherly.member.rejoined": "rejoined",
    "gatherly.member.left": "left",
}


class KpiProjection:
    """Members per community per day, bucketed by the day the fact happened (UTC)."""

    name = "kpi"
    schema = SCHEMA

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        counts: Counter[tuple[str, date, str]] = Counter()
        for event in events:
            column = MEMBER_FACTS.get(event.type)
            if column:
                counts[(event.community_id, event.time.astimezone(UTC).date(), column)] += 1
        if counts:
            await self._add_member_counts(conn, counts)

    async def _add_member_counts(
        self, conn: AsyncConnection, counts: Counter[tuple[str, date, str]]
    ) -> None:
        days = sorted({(community, day) for community, day, _ in counts})
        await conn.execute(
            text(
                'INSERT INTO members_daily AS m (community_id, day, joined, rejoined, "left")'
                " SELECT * FROM unnest(CAST(:c AS text[]), CAST(:d AS date[]),"
                " CAST(:j AS int[]), CAST(:r AS int[]), CAST(:l AS int[]))"
                " ON CONFLICT (community_id, day) DO UPDATE SET"
                " joined = m.joined + excluded.joined, rejoined = m.rejoined + excluded.rejoined,"
                ' "left" = m."left" + excluded."left"'
            ),
            {
                "c": [community for community, _ in days],
                "d": [day for _, day in days],
                "j": [counts[(c, d, "joined")] for c, d in days],
                "r": [counts[(c, d, "rejoined")] for c, d in days],
                "l": [counts[(c, d, "left")] for c, d in days],
            },
        )

    async def reset(self, conn: AsyncConnection) -> None:
        await conn.execute(text("TRUNCATE members_daily"))


def build_projection() -> KpiProjection:
    return KpiProjection()
