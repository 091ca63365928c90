"""KPI queries over the projections: read-only, per community."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class MembersDay:
    day: date
    joined: int
    rejoined: int
    left: int
    total: int

    @property
    def net(self) -> int:
        return self.joined + self.rejoined - self.left


async def members_by_day(
    conn: AsyncConnection, community_id: str, first: date, last: date
) -> list[MembersDay]:
    """Every day in [first, last], with the members total at that day's end."""
    rows = await conn.execute(
        text(
            """
            WITH running AS (
                SELECT day, joined, rejoined, "left",
                       sum(joined + rejoined - "left") OVER (ORDER BY day) AS total
                FROM members_daily WHERE community_id = :c AND day <= :last
            )
            SELECT d::date AS day,
                   coalesce(r.joined, 0) AS joined,
                   coalesce(r.rejoined, 0) AS rejoined,
                   coalesce(r."left", 0) AS left,
                   coalesce(
                       (SELECT total FROM running WHERE running.day <= d::date
                        ORDER BY running.day DESC LIMIT 1),
                       0
                   ) AS total
            FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') d
            LEFT JOIN running r ON r.day = d::date
            ORDER BY d
            """
        ),
        {"c": community_id, "first": first, "last": last},
    )
    return [MembersDay(r.day, r.joined, r.rejoined, r.left, int(r.total)) for r in rows]
