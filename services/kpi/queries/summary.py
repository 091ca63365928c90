"""Every headline number for a window, in one answer (also what the live stream pushes and what
a dashboard polls): only the window's totals, each from its rollup or one count, never the
per-period series the full KPIs build."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.beyond import active_total
from services.kpi.queries.channels import channels_kpi
from services.kpi.queries.content import reactions_totals, views_total
from services.kpi.queries.events import events_totals
from services.kpi.queries.feedback import feedback_totals
from services.kpi.queries.members import members_totals
from services.kpi.queries.window import Window


async def summary_kpi(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    members = await members_totals(conn, community, w)
    views = await views_total(conn, community, w)
    channels = (await channels_kpi(conn, community, w))["channels"]
    return {
        "members": {k: members[k] for k in
                    ("total", "joined", "rejoined", "left", "net", "growth_rate", "churn_rate")},
        "views": views,
        "reactions": await reactions_totals(conn, community, w, views),
        "events": await events_totals(conn, community, w),
        "feedback": await feedback_totals(conn, community, w, sla_hours),
        "active_members": await active_total(conn, community, w),
        "top_channel": channels[0]["channel"] if channels else None,
    }
