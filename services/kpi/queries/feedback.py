"""Feedback: submitted, answered, resolved per period; time to first answer (exact median, p90);
the share of feedback answered within the community's SLA; the open backlog and its age at the
end of the window. Open means not yet resolved. Counts per day from `feedback_days`; waits and
backlog from their rollups, exact (queries/backlog.py)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries import backlog
from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import DAY_BUCKET, IN_WINDOW

COLUMNS = {"submitted": "submitted_at", "answered": "answered_at", "resolved": "resolved_at"}
# One row per period, the kinds side by side (a year of days: 365 rows, not 1,095).
PERIODS = (f"SELECT {DAY_BUCKET} AS b, "
           + ", ".join(f"CAST(coalesce(sum(n) FILTER (WHERE kind = '{kind}'), 0) AS bigint)"
                       f" AS {kind}" for kind in COLUMNS)
           + f" FROM feedback_days WHERE {IN_WINDOW} GROUP BY 1")
SUBMITTED = (f"SELECT coalesce(sum(n), 0) FROM feedback_days WHERE {IN_WINDOW}"
             " AND kind = 'submitted'")


async def feedback_kpi(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    periods: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for b, submitted, answered, resolved in await conn.execute(text(PERIODS), params):
        periods[b.isoformat()].update(submitted=int(submitted), answered=int(answered),
                                      resolved=int(resolved))
    series = [{"start": s.isoformat(), **periods[s.isoformat()]} for s in w.buckets()]
    counts = {name: sum(p[name] for p in series) for name in COLUMNS}
    answers = await backlog.waits(conn, community, w, timedelta(hours=sla_hours))
    open_ = await backlog.backlog(conn, community, w)
    return {
        **counts,
        "first_answer_seconds": {"median": answers["median"], "p90": answers["p90"]},
        "sla_hours": sla_hours,
        "answered_within_sla": ratio(answers["within_sla"], counts["submitted"]),
        "backlog": {"open": open_["open"], "as_of": w.end.isoformat(),
                    "median_age_seconds": open_["median_age"],
                    "max_age_seconds": open_["max_age"]},
        "periods": series,
    }


async def feedback_totals(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    """The summary's numbers alone: submitted in the window, median time to first answer, the
    share answered within the SLA, the open backlog at the window's end."""
    submitted = int(await conn.scalar(text(SUBMITTED), {"c": community, **w.params()}) or 0)
    answers = await backlog.waits(conn, community, w, timedelta(hours=sla_hours))
    open_ = await backlog.backlog(conn, community, w)
    return {"submitted": submitted, "first_answer_median_seconds": answers["median"],
            "answered_within_sla": ratio(answers["within_sla"], submitted),
            "open": open_["open"]}
