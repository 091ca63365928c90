"""Feedback: submitted, answered, resolved per period; time to first answer (exact median, p90);
the share of feedback answered within the community's SLA; the open backlog and its age at the
end of the window. Open means not yet resolved. Counts per day from `feedback_days`; waits and
backlog from their rollups, exact (queries/backlog.py), read in the same two round trips."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries import backlog
from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import IN_WINDOW, ZONED, NewZone, day_bucket

COLUMNS = {"submitted": "submitted_at", "answered": "answered_at", "resolved": "resolved_at"}
# Each kind as an array over the window's periods (`:buckets`, zeros included), one row, and
# whether the zone is registered (zones.ZONED);
# `{bucket}`: zones.day_bucket (the day itself at day granularity, no date_trunc per row).
PERIODS = (
    f"SELECT {ZONED} AS zoned, "
    + ", ".join(f"array_agg(CAST(coalesce(f.{kind}, 0) AS bigint) ORDER BY p.b) AS {kind}"
                for kind in COLUMNS)
    + " FROM unnest(CAST(:buckets AS date[])) AS p(b) LEFT JOIN"
    " (SELECT {bucket} AS b, "
    + ", ".join(f"sum(n) FILTER (WHERE kind = '{kind}') AS {kind}" for kind in COLUMNS)
    + f" FROM feedback_days WHERE {IN_WINDOW} GROUP BY 1) f USING (b)"
)
SUBMITTED = (f"SELECT CAST(coalesce(sum(n), 0) AS bigint) AS submitted FROM feedback_days"
             f" WHERE {IN_WINDOW} AND kind = 'submitted'")


async def feedback_kpi(
    conn: AsyncConnection, community: str, w: Window, sla_hours: float
) -> dict[str, Any]:
    """NewZone when the window's zone is not registered (its rollups not filled)."""
    buckets = w.buckets()
    answers, open_, row = await backlog.answers(
        conn, community, w, timedelta(hours=sla_hours),
        PERIODS.format(bucket=day_bucket(w.granularity)), buckets=buckets)
    if not row.zoned:
        raise NewZone
    series = [{"start": b.isoformat(), "submitted": s, "answered": a, "resolved": r}
              for b, s, a, r in zip(buckets, row.submitted, row.answered, row.resolved,
                                    strict=True)]
    counts = {"submitted": sum(row.submitted), "answered": sum(row.answered),
              "resolved": sum(row.resolved)}
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
    answers, open_, row = await backlog.answers(
        conn, community, w, timedelta(hours=sla_hours), SUBMITTED)
    return {"submitted": row.submitted, "first_answer_median_seconds": answers["median"],
            "answered_within_sla": ratio(answers["within_sla"], row.submitted),
            "open": open_["open"]}
