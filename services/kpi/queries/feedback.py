"""Feedback: submitted, answered, resolved per period; time to first answer (exact median, p90);
the share of feedback answered within the community's SLA; the open backlog and its age at the
end of the window. Open means not yet resolved."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import DAY_BUCKET, IN_WINDOW

COLUMNS = {"submitted": "submitted_at", "answered": "answered_at", "resolved": "resolved_at"}

SUMMARY = """
WITH asked AS (
    SELECT submitted_at, answered_at FROM feedback
    WHERE community_id = :c AND submitted_at >= :start AND submitted_at < :end
), waits AS (
    SELECT extract(epoch FROM answered_at - submitted_at) AS s FROM asked
    WHERE answered_at IS NOT NULL
), open AS (
    SELECT extract(epoch FROM CAST(:end AS timestamptz) - submitted_at) AS age FROM feedback
    WHERE community_id = :c AND submitted_at < :end
      AND (resolved_at IS NULL OR resolved_at >= :end)
)
SELECT (SELECT count(*) FROM asked) AS asked,
       (SELECT count(*) FROM asked WHERE answered_at - submitted_at <= :sla) AS within_sla,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM waits) AS w50,
       (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY s) FROM waits) AS w90,
       (SELECT count(*) FROM open) AS backlog,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY age) FROM open) AS age50,
       (SELECT max(age) FROM open) AS age_max
"""


async def feedback_kpi(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    periods: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for r in await conn.execute(
        text(f"SELECT {DAY_BUCKET} AS b, kind, sum(n) AS n FROM feedback_days"
             f" WHERE {IN_WINDOW} GROUP BY 1, 2"),
        params,
    ):
        periods[r.b.isoformat()][r.kind] = int(r.n)
    series = [{"start": s.isoformat(), **periods[s.isoformat()]} for s in w.buckets()]
    row = (await conn.execute(
        text(SUMMARY), {**params, "sla": timedelta(hours=sla_hours)}
    )).one()
    return {
        **{name: sum(p[name] for p in series) for name in COLUMNS},
        "first_answer_seconds": {"median": _f(row.w50), "p90": _f(row.w90)},
        "sla_hours": sla_hours,
        "answered_within_sla": ratio(int(row.within_sla), int(row.asked)),
        "backlog": {"open": int(row.backlog), "as_of": w.end.isoformat(),
                    "median_age_seconds": _f(row.age50), "max_age_seconds": _f(row.age_max)},
        "periods": series,
    }


async def feedback_totals(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    """The summary's numbers alone: submitted in the window, median time to first answer, the
    share answered within the SLA, the open backlog at the window's end."""
    row = (await conn.execute(
        text(SUMMARY), {"c": community, **w.params(), "sla": timedelta(hours=sla_hours)}
    )).one()
    return {"submitted": int(row.asked), "first_answer_median_seconds": _f(row.w50),
            "answered_within_sla": ratio(int(row.within_sla), int(row.asked)),
            "open": int(row.backlog)}


def _f(value: Any) -> float | None:
    return None if value is None else float(value)
