"""Community events: registered, attended, walk-ins, no-shows, new and repeat participants, per
event and per period. A participant is new at their first attended event in the community
(earliest check-in, ties by event id); no-shows count only once an event has finished."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, bucket, ratio
from services.kpi.queries.zones import DAY_BUCKET, IN_WINDOW

# No-shows: registered (not cancelled) minus those of them checked in, per finished event, in
# the period of the event's start (`event_registrations`, kept by the projection).
NO_SHOWS = ("ON r.community_id = e.community_id AND r.event_id = e.event_id"
            " WHERE e.community_id = :c AND e.finished_at IS NOT NULL"
            " AND e.starts_at >= :start AND e.starts_at < :end")

# New participants: each member's first attendance is kept in `first_attendances` (the
# projection keeps the earliest check-in, ties by event id), one row per participating member.
PER_EVENT = """
WITH att AS (
    SELECT a.event_id, count(*) AS attended, count(*) FILTER (WHERE a.walk_in) AS walk_ins
    FROM attendances a WHERE a.community_id = :c AND a.event_id = ANY(:ids) GROUP BY 1
), new AS (
    SELECT event_id, count(*) AS new FROM first_attendances
    WHERE community_id = :c AND event_id = ANY(:ids) GROUP BY 1
), reg AS (
    SELECT event_id, registered, registered - attended AS absent FROM event_registrations
    WHERE community_id = :c AND event_id = ANY(:ids)
)
SELECT i.event_id, e.starts_at, e.finished_at, e.cancelled_at,
       coalesce(reg.registered, 0) AS registered, coalesce(reg.absent, 0) AS absent,
       coalesce(att.attended, 0) AS attended, coalesce(att.walk_ins, 0) AS walk_ins,
       coalesce(new.new, 0) AS new,
       (e.event_id IS NOT NULL OR reg.event_id IS NOT NULL OR att.event_id IS NOT NULL
        OR EXISTS (SELECT 1 FROM registrations x WHERE x.community_id = :c
                   AND x.event_id = i.event_id)) AS known
FROM unnest(CAST(:ids AS text[])) AS i(event_id)
LEFT JOIN community_events e ON e.community_id = :c AND e.event_id = i.event_id
LEFT JOIN att ON att.event_id = i.event_id LEFT JOIN reg ON reg.event_id = i.event_id
LEFT JOIN new ON new.event_id = i.event_id
ORDER BY e.starts_at NULLS LAST, i.event_id
"""


async def event_stats(
    conn: AsyncConnection, community: str, event_ids: list[str]
) -> list[dict[str, Any]]:
    """Stats of the known events among `event_ids` (an event nothing is known about is left
    out)."""
    rows = await conn.execute(text(PER_EVENT), {"c": community, "ids": event_ids})
    return [
        {
            "event_id": r.event_id,
            "starts_at": r.starts_at.isoformat() if r.starts_at else None,
            "status": _status(r),
            "registered": int(r.registered), "attended": int(r.attended),
            "walk_ins": int(r.walk_ins),
            "no_shows": int(r.absent) if r.finished_at else None,
            "new": int(r.new), "repeat": int(r.attended) - int(r.new),
            "new_to_repeat": ratio(int(r.new), int(r.attended) - int(r.new)),
        }
        for r in rows
        if r.known
    ]


def _status(row: Any) -> str:
    return "cancelled" if row.cancelled_at else "finished" if row.finished_at else "scheduled"


async def events_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    periods: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("registered", "attended", "walk_ins", "no_shows", "new"), 0)
    )
    queries = {
        "registered": f"SELECT {DAY_BUCKET} AS b, sum(n) AS n FROM registration_days"
        f" WHERE {IN_WINDOW} GROUP BY 1",
        "no_shows": f"SELECT {bucket('e.starts_at')} AS b, sum(r.registered - r.attended) AS n"
        f" FROM community_events e JOIN event_registrations r {NO_SHOWS} GROUP BY 1",
        "new": f"SELECT {bucket('checked_in_at')} AS b, count(*) AS n FROM first_attendances"
        " WHERE community_id = :c AND checked_in_at >= :start AND checked_in_at < :end"
        " GROUP BY 1",
    }
    for key, sql in queries.items():
        for r in await conn.execute(text(sql), params):
            periods[r.b.isoformat()][key] = int(r.n)
    attended = await conn.execute(
        text(
            f"SELECT {DAY_BUCKET} AS b, sum(n) AS n, coalesce(sum(n) FILTER (WHERE walk_in), 0)"
            f" AS w FROM attendance_days WHERE {IN_WINDOW} GROUP BY 1"
        ),
        params,
    )
    for r in attended:
        periods[r.b.isoformat()].update(attended=int(r.n), walk_ins=int(r.w))
    series = [_with_repeat({"start": s.isoformat(), **periods[s.isoformat()]})
              for s in w.buckets()]
    totals = _with_repeat({k: sum(int(p[k]) for p in series)
                           for k in ("registered", "attended", "walk_ins", "no_shows", "new")})
    ids = [r.event_id for r in await conn.execute(
        text("SELECT event_id FROM community_events WHERE community_id = :c"
             " AND starts_at >= :start AND starts_at < :end ORDER BY starts_at LIMIT 500"),
        params,
    )]
    return {**totals, "periods": series, "events": await event_stats(conn, community, ids)}


TOTALS = f"""
SELECT (SELECT coalesce(sum(n), 0) FROM registration_days WHERE {IN_WINDOW}) AS registered,
       (SELECT coalesce(sum(n), 0) FROM attendance_days WHERE {IN_WINDOW}) AS attended,
       (SELECT count(*) FROM first_attendances WHERE community_id = :c
        AND checked_in_at >= :start AND checked_in_at < :end) AS new,
       (SELECT coalesce(sum(r.registered - r.attended), 0)
        FROM community_events e JOIN event_registrations r {NO_SHOWS}) AS no_shows
"""


async def events_totals(conn: AsyncConnection, community: str, w: Window) -> dict[str, int]:
    """The window's headline numbers alone (the summary's), the same counts `events_kpi` sums
    over its periods."""
    row = (await conn.execute(text(TOTALS), {"c": community, **w.params()})).one()
    return {"registered": int(row.registered), "attended": int(row.attended),
            "no_shows": int(row.no_shows), "new": int(row.new),
            "repeat": int(row.attended) - int(row.new)}


def _with_repeat(counts: dict[str, Any]) -> dict[str, Any]:
    repeat = counts["attended"] - counts["new"]
    return {**counts, "repeat": repeat, "new_to_repeat": ratio(counts["new"], repeat),
            "attendance_rate": ratio(counts["attended"] - counts["walk_ins"],
                                     counts["registered"])}
