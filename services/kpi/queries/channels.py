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

# Each measure's (channel, n) rows in the window. Joins, views, reactions and platforms' counter
# snapshots read whole months from their monthly rollups and only the days around
# (facts/counters.py: a channel whose only snapshots count 0 is still ranked, with 0).
JOINS = whole_months_and_days("channel, n", "member", "kind <> 'left'")
REACTIONS_ADDED = whole_months_and_days("channel, n", "reaction", "added")
# Kept per day only; `{also}`: a further condition.
DAILY = "SELECT channel, n FROM {table} WHERE " + IN_WINDOW + "{also}"
REGISTRATIONS = DAILY.format(table="registration_days", also="")
ATTENDANCES = DAILY.format(table="attendance_days", also="")
FEEDBACK = DAILY.format(table="feedback_days", also=" AND kind = 'submitted'")
COUNTED = "snapshots > 0"
SOURCES = {
    "joins": (JOINS,),
    "views": (whole_months_and_days("channel, n", "view"),
              whole_months_and_days("channel, n", "view_counter", COUNTED)),
    "reactions": (REACTIONS_ADDED, whole_months_and_days("channel, n", "reaction_counter",
                                                         COUNTED)),
    "registrations": (REGISTRATIONS,),
    "attendances": (ATTENDANCES,),
    "feedback": (FEEDBACK,),
}
CHANNELS = " UNION ALL ".join(
    f"SELECT '{measure}' AS m, channel, sum(n) AS n FROM ({source}) s GROUP BY 2"
    for measure, sources in SOURCES.items() for source in sources)


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
