"""Channels that work: per channel, joins (and rejoins), views, reactions (added, plus platforms'
latest anonymous counts), registrations, attendances and feedback in the window; ranked by the
sum of them, then by name."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window
from services.kpi.queries.zones import IN_WINDOW, whole_months_and_days

MEASURES = ("joins", "views", "reactions", "registrations", "attendances", "feedback")

# Joins and reactions read whole months from their monthly rollups and only the days around;
# platforms' counter snapshots their per-day rollups (facts/counters.py: a channel whose only
# snapshots count 0 is still ranked, with 0).
CHANNELS = f"""
SELECT 'joins' AS m, channel, sum(n) AS n
  FROM ({whole_months_and_days("channel, n", "member", "kind <> 'left'")}) j GROUP BY 2
UNION ALL
SELECT 'views', channel, sum(n) FROM view_days WHERE {IN_WINDOW} GROUP BY 2
UNION ALL
SELECT 'views', channel, sum(n) FROM view_counter_days
 WHERE {IN_WINDOW} AND snapshots > 0 GROUP BY 2
UNION ALL
SELECT 'reactions', channel, sum(n)
  FROM ({whole_months_and_days("channel, n", "reaction", "added")}) r GROUP BY 2
UNION ALL
SELECT 'reactions', channel, sum(n) FROM reaction_counter_days
 WHERE {IN_WINDOW} AND snapshots > 0 GROUP BY 2
UNION ALL
SELECT 'registrations', channel, sum(n) FROM registration_days WHERE {IN_WINDOW} GROUP BY 2
UNION ALL
SELECT 'attendances', channel, sum(n) FROM attendance_days WHERE {IN_WINDOW} GROUP BY 2
UNION ALL
SELECT 'feedback', channel, sum(n) FROM feedback_days
 WHERE {IN_WINDOW} AND kind = 'submitted' GROUP BY 2
"""
# The channel the ranking puts first: the largest sum, then the first name in code point order
# (Python's, as `channels_kpi` sorts; "C" compares UTF-8 bytes, the same order).
TOP = (f"SELECT channel FROM ({CHANNELS}) c GROUP BY channel"
       ' ORDER BY sum(n) DESC, channel COLLATE "C" LIMIT 1')


async def channels_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    for r in await conn.execute(text(CHANNELS), {"c": community, **w.params()}):
        counts[r.channel][r.m] += int(r.n)
    ranked = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return {
        "channels": [
            {"rank": rank, "channel": channel, **measures, "score": sum(measures.values())}
            for rank, (channel, measures) in enumerate(ranked, start=1)
        ]
    }


async def top_channel(conn: AsyncConnection, community: str, w: Window) -> str | None:
    """The first of `channels_kpi`'s ranking, without the ranking (the summary's)."""
    found: str | None = await conn.scalar(text(TOP), {"c": community, **w.params()})
    return found
