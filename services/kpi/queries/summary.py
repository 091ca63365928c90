"""Every headline number for a window, in one answer (also what the live stream pushes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.beyond import active_kpi
from services.kpi.queries.channels import channels_kpi
from services.kpi.queries.content import reactions_kpi, views_kpi
from services.kpi.queries.events import events_kpi
from services.kpi.queries.feedback import feedback_kpi
from services.kpi.queries.members import members_kpi
from services.kpi.queries.window import Window


async def summary_kpi(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    members = await members_kpi(conn, community, w)
    reactions = await reactions_kpi(conn, community, w)
    events = await events_kpi(conn, community, w)
    feedback = await feedback_kpi(conn, community, w, sla_hours)
    channels = (await channels_kpi(conn, community, w))["channels"]
    return {
        "members": {k: members[k] for k in
                    ("total", "joined", "rejoined", "left", "net", "growth_rate", "churn_rate")},
        "views": (await views_kpi(conn, community, w, limit=0))["total"],
        "reactions": {"added": reactions["added"], "per_view": reactions["per_view"],
                      "first_reaction_median_seconds":
                          reactions["speed"]["first_reaction_seconds"]["median"]},
        "events": {k: events[k] for k in ("registered", "attended", "no_shows", "new", "repeat")},
        "feedback": {"submitted": feedback["submitted"],
                     "first_answer_median_seconds": feedback["first_answer_seconds"]["median"],
                     "answered_within_sla": feedback["answered_within_sla"],
                     "open": feedback["backlog"]["open"]},
        "active_members": (await active_kpi(conn, community, w))["active"],
        "top_channel": channels[0]["channel"] if channels else None,
    }
