"""Community events: registered, attended, walk-ins, no-shows, new and repeat participants, per
event and per period. A participant is new at their first attended event in the community
(earliest check-in, ties by event id); no-shows count only once an event has finished."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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

# Per period from the daily rollups (new participants: `first_attendance_days`, members per
# local day of their first attendance) and no-shows per finished event; one round trip, the
# sums as bigint (numeric would come back as Decimal, slower to decode).
PERIODS = " UNION ALL ".join((
    f"SELECT 'registered' AS k, {DAY_BUCKET} AS b, CAST(sum(n) AS bigint) AS n, 0 AS w"
    f" FROM registration_days WHERE {IN_WINDOW} GROUP BY 2",
    f"SELECT 'attended', {DAY_BUCKET}, CAST(sum(n) AS bigint),"
    " CAST(coalesce(sum(n) FILTER (WHERE walk_in), 0) AS bigint)"
    f" FROM attendance_days WHERE {IN_WINDOW} GROUP BY 2",
    f"SELECT 'new', {DAY_BUCKET}, CAST(sum(n) AS bigint), 0 FROM first_attendance_days"
    f" WHERE {IN_WINDOW} GROUP BY 2",
    f"SELECT 'no_shows', {bucket('e.starts_at')},"
    " CAST(sum(r.registered - r.attended) AS bigint), 0"
    f" FROM community_events e JOIN event_registrations r {NO_SHOWS} GROUP BY 2",
))
# Per event: `event_participants` (attended, walk-ins, new) and `event_registrations`.
_PER_EVENT = """
SELECT i.event_id, e.starts_at, e.finished_at IS NOT NULL AS finished,
       e.cancelled_at IS NOT NULL AS cancelled,
       coalesce(reg.registered, 0) AS registered,
       coalesce(reg.registered - reg.attended, 0) AS absent,
       coalesce(p.attended, 0) AS attended, coalesce(p.walk_ins, 0) AS walk_ins,
       coalesce(p.new, 0) AS new,
       (e.event_id IS NOT NULL OR reg.event_id IS NOT NULL OR p.attended > 0
        OR EXISTS (SELECT 1 FROM registrations x WHERE x.community_id = :c
                   AND x.event_id = i.event_id)) AS known
FROM {events} AS i(event_id)
LEFT JOIN community_events e ON e.community_id = :c AND e.event_id = i.event_id
LEFT JOIN event_registrations reg ON reg.community_id = :c AND reg.event_id = i.event_id
LEFT JOIN event_participants p ON p.community_id = :c AND p.event_id = i.event_id
ORDER BY e.starts_at NULLS LAST, i.event_id
"""
PER_EVENT = _PER_EVENT.format(events="unnest(CAST(:ids AS text[]))")
# The window's first 500 events by start.
IN_WINDOW_EVENTS = _PER_EVENT.format(
    events="(SELECT event_id FROM community_events WHERE community_id = :c"
    " AND starts_at >= :start AND starts_at < :end ORDER BY starts_at LIMIT 500)")


async def event_stats(
    conn: AsyncConnection, community: str, event_ids: list[str]
) -> list[dict[str, Any]]:
    """Stats of the known events among `event_ids` (an event nothing is known about is left
    out)."""
    return _stats(await conn.execute(text(PER_EVENT), {"c": community, "ids": event_ids}))


def _stats(rows: Iterable[Any]) -> list[dict[str, Any]]:
    stats = []
    # Unpacked by position: a year's 500 events, attribute access was most of the Python time.
    for (event_id, starts_at, finished, cancelled, registered, absent, attended, walk_ins, new,
         known) in rows:
        if not known:
            continue
        repeat = attended - new
        stats.append({
            "event_id": event_id,
            "starts_at": starts_at.isoformat() if starts_at else None,
            "status": "cancelled" if cancelled else "finished" if finished else "scheduled",
            "registered": registered, "attended": attended, "walk_ins": walk_ins,
            "no_shows": absent if finished else None,
            "new": new, "repeat": repeat, "new_to_repeat": ratio(new, repeat),
        })
    return stats


async def events_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    params = {"c": community, **w.params()}
    periods: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("registered", "attended", "walk_ins", "no_shows", "new"), 0)
    )
    for r in await conn.execute(text(PERIODS), params):
        counts = periods[r.b.isoformat()]
        counts[r.k] = int(r.n)
        if r.k == "attended":
            counts["walk_ins"] = int(r.w)
    series = [_with_repeat({"start": s.isoformat(), **periods[s.isoformat()]})
              for s in w.buckets()]
    totals = _with_repeat({k: sum(int(p[k]) for p in series)
                           for k in ("registered", "attended", "walk_ins", "no_shows", "new")})
    events = _stats(await conn.execute(text(IN_WINDOW_EVENTS), params))
    return {**totals, "periods": series, "events": events}


TOTALS = f"""
SELECT (SELECT coalesce(sum(n), 0) FROM registration_days WHERE {IN_WINDOW}) AS registered,
       (SELECT coalesce(sum(n), 0) FROM attendance_days WHERE {IN_WINDOW}) AS attended,
       (SELECT coalesce(sum(n), 0) FROM first_attendance_days WHERE {IN_WINDOW}) AS new,
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
