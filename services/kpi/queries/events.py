"""Community events: registered, attended, walk-ins, no-shows, new and repeat participants, per
event and per period. A period's numbers are those of the events that start in it (in the
window's zone), so they are the sums of its events' own numbers. A participant is new at their
first attended event in the community (earliest check-in, ties by event id); no-shows count only
once an event has finished, and so does the attendance rate."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, bucket, ratio

# The window's events (by start) and their counts, from the per-event tables the projection
# keeps (`event_registrations`: registrations not cancelled, and those of them checked in;
# `event_participants`: attendances, walk-ins, new participants). A year at 1M members is ~500
# rows: no zone's rollups are needed, so the answer is the same in every zone's periods.
# `present`: registrations checked in; `held`: the event finished (no-shows and the rate).
WINDOW_EVENTS = (
    "SELECT e.event_id, e.starts_at, e.finished_at IS NOT NULL AS held,"
    " CASE WHEN e.cancelled_at IS NOT NULL THEN 'cancelled'"
    " WHEN e.finished_at IS NOT NULL THEN 'finished' ELSE 'scheduled' END AS status,"
    " coalesce(reg.registered, 0) AS registered, coalesce(reg.attended, 0) AS present,"
    " coalesce(p.attended, 0) AS attended, coalesce(p.walk_ins, 0) AS walk_ins,"
    " coalesce(p.new, 0) AS new"
    " FROM community_events e"
    " LEFT JOIN event_registrations reg ON reg.community_id = :c AND reg.event_id = e.event_id"
    " LEFT JOIN event_participants p ON p.community_id = :c AND p.event_id = e.event_id"
    " WHERE e.community_id = :c AND e.starts_at >= :start AND e.starts_at < :end"
)
# Per period: the sums over its events; no-shows and the registrations the attendance rate is
# over only for finished events (`held_registered`). Bigint: numeric would come back as Decimal.
_SUMS = {
    "registered": "sum(registered)", "attended": "sum(attended)", "walk_ins": "sum(walk_ins)",
    "no_shows": "sum(registered - present) FILTER (WHERE held)", "new": "sum(new)",
    "held_registered": "sum(registered) FILTER (WHERE held)",
}
_PER_PERIOD = (f"SELECT {bucket('starts_at')} AS b, "
               + ", ".join(f"{sql} AS {name}" for name, sql in _SUMS.items())
               + " FROM we GROUP BY 1")
# Each column an array over the window's periods (`:buckets`, zeros included).
PERIODS = (
    "SELECT " + ", ".join(f"array_agg(CAST(coalesce(s.{name}, 0) AS bigint) ORDER BY p.b)"
                          f" AS {name}" for name in _SUMS)
    + f" FROM unnest(CAST(:buckets AS date[])) AS p(b) LEFT JOIN ({_PER_PERIOD}) s USING (b)"
)
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
# The window's first 500 events by start, each column an array in start order.
_EVENT_COLUMNS = {
    "ids": "event_id", "starts": "starts_at AT TIME ZONE 'UTC'", "statuses": "status",
    "registered": "registered",
    "no_shows": "CASE WHEN held THEN registered - present END",
    "attended": "attended", "walk_ins": "walk_ins", "new": "new",
}
IN_WINDOW_EVENTS = (
    "SELECT " + ", ".join(f"array_agg({name} ORDER BY starts, ids) AS event_{name}"
                          for name in _EVENT_COLUMNS)
    + " FROM (SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in _EVENT_COLUMNS.items())
    + " FROM we ORDER BY starts_at, event_id LIMIT 500) e"
)
# The whole answer in one round trip: one row of arrays.
EVENTS = text(f"WITH we AS ({WINDOW_EVENTS}) SELECT * FROM ({PERIODS}) periods,"
              f" ({IN_WINDOW_EVENTS}) events")


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
        stats.append(_event(
            event_id, starts_at.isoformat() if starts_at else None,
            "cancelled" if cancelled else "finished" if finished else "scheduled",
            registered, absent if finished else None, attended, walk_ins, new))
    return stats


def _event(event_id: str, starts_at: str | None, status: str, registered: int,
           no_shows: int | None, attended: int, walk_ins: int, new: int) -> dict[str, Any]:
    """One event's answer, as `/events/{id}` and the window's list both give it."""
    repeat = attended - new
    return {"event_id": event_id, "starts_at": starts_at, "status": status,
            "registered": registered, "attended": attended, "walk_ins": walk_ins,
            "no_shows": no_shows, "new": new, "repeat": repeat,
            "new_to_repeat": ratio(new, repeat)}


async def events_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """Totals, the window's periods and its first 500 events, read by one statement."""
    buckets = w.buckets()
    row = (await conn.execute(EVENTS, {"c": community, **w.params(), "buckets": buckets})).one()
    series = [_counts(*counts, start=b.isoformat()) for b, *counts in zip(
        buckets, row.registered, row.attended, row.walk_ins, row.no_shows, row.new,
        row.held_registered, strict=True)]
    totals = _counts(sum(row.registered), sum(row.attended), sum(row.walk_ins),
                     sum(row.no_shows), sum(row.new), sum(row.held_registered))
    return {**totals, "periods": series, "events": _in_window(row)}


def _in_window(row: Any) -> list[dict[str, Any]]:
    if row.event_ids is None:
        return []
    # `starts` are naive UTC timestamps: formatting one takes half the time of an aware one.
    return [_event(event_id, starts_at.isoformat() + "+00:00", *counts)
            for event_id, starts_at, *counts in zip(
                row.event_ids, row.event_starts, row.event_statuses, row.event_registered,
                row.event_no_shows, row.event_attended, row.event_walk_ins, row.event_new,
                strict=True)]


# The window's totals alone (the summary's), the same sums over the same events.
TOTALS = (f"SELECT {', '.join(f'coalesce({sql}, 0) AS {name}' for name, sql in _SUMS.items())}"
          f" FROM ({WINDOW_EVENTS}) we")


def totals_of(row: Any) -> dict[str, int]:
    """`TOTALS`' row as the answer's numbers."""
    return {"registered": int(row.registered), "attended": int(row.attended),
            "no_shows": int(row.no_shows), "new": int(row.new),
            "repeat": int(row.attended) - int(row.new)}


def _counts(registered: int, attended: int, walk_ins: int, no_shows: int, new: int,
            held_registered: int, **start: str) -> dict[str, Any]:
    """A period's (or the window's) numbers. The attendance rate: of the registrations for
    finished events, the share checked in (walk-ins, never registered, are not in it)."""
    repeat = attended - new
    return {**start, "registered": registered, "attended": attended, "walk_ins": walk_ins,
            "no_shows": no_shows, "new": new, "repeat": repeat,
            "new_to_repeat": ratio(new, repeat),
            "attendance_rate": ratio(held_registered - no_shows, held_registered)}
