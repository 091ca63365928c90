"""Community events: registered, attended, walk-ins, no-shows, new and repeat participants, per
event and per period. A participant is new at their first attended event in the community
(earliest check-in, ties by event id); no-shows count only once an event has finished."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, bucket, ratio
from services.kpi.queries.zones import IN_WINDOW, ZONED, NewZone, day_bucket

# No-shows: registered (not cancelled) minus those of them checked in, per finished event, in
# the period of the event's start (`event_registrations`, kept by the projection).
NO_SHOWS = ("ON r.community_id = e.community_id AND r.event_id = e.event_id"
            " WHERE e.community_id = :c AND e.finished_at IS NOT NULL"
            " AND e.starts_at >= :start AND e.starts_at < :end")

# Per period from the daily rollups (new participants: `first_attendance_days`, members per
# local day of their first attendance) and no-shows per finished event, each as an array over
# the window's periods (`:buckets`, zeros included); the sums as bigint (numeric would come back
# as Decimal, slower to decode).
# `{bucket}`: zones.day_bucket (the day itself at day granularity, no date_trunc per row).
_PER_PERIOD = {
    "registered": f"SELECT {{bucket}} AS b, sum(n) AS n FROM registration_days"
                  f" WHERE {IN_WINDOW} GROUP BY 1",
    "attended": f"SELECT {{bucket}} AS b, sum(n) AS n, sum(n) FILTER (WHERE walk_in) AS w"
                f" FROM attendance_days WHERE {IN_WINDOW} GROUP BY 1",
    "new": f"SELECT {{bucket}} AS b, sum(n) AS n FROM first_attendance_days"
           f" WHERE {IN_WINDOW} GROUP BY 1",
    "no_shows": f"SELECT {bucket('e.starts_at')} AS b, sum(r.registered - r.attended) AS n"
                f" FROM community_events e JOIN event_registrations r {NO_SHOWS} GROUP BY 1",
}
PERIODS = (
    "SELECT " + ", ".join(
        f"array_agg(CAST(coalesce({sql}, 0) AS bigint) ORDER BY p.b) AS {name}"
        for name, sql in (("registered", "registered.n"), ("attended", "attended.n"),
                          ("walk_ins", "attended.w"), ("no_shows", "no_shows.n"),
                          ("new", "new.n")))
    + " FROM unnest(CAST(:buckets AS date[])) AS p(b) "
    + " ".join(f"LEFT JOIN ({sql}) AS {name} USING (b)" for name, sql in _PER_PERIOD.items())
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
    "ids": "e.event_id", "starts": "e.starts_at AT TIME ZONE 'UTC'",
    "statuses": "CASE WHEN e.cancelled_at IS NOT NULL THEN 'cancelled'"
                " WHEN e.finished_at IS NOT NULL THEN 'finished' ELSE 'scheduled' END",
    "registered": "coalesce(reg.registered, 0)",
    "no_shows": "CASE WHEN e.finished_at IS NOT NULL"
                " THEN coalesce(reg.registered - reg.attended, 0) END",
    "attended": "coalesce(p.attended, 0)", "walk_ins": "coalesce(p.walk_ins, 0)",
    "new": "coalesce(p.new, 0)",
}
IN_WINDOW_EVENTS = (
    "SELECT " + ", ".join(f"array_agg({name} ORDER BY starts, ids) AS event_{name}"
                          for name in _EVENT_COLUMNS)
    + " FROM (SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in _EVENT_COLUMNS.items())
    + " FROM community_events e"
    " LEFT JOIN event_registrations reg ON reg.community_id = :c AND reg.event_id = e.event_id"
    " LEFT JOIN event_participants p ON p.community_id = :c AND p.event_id = e.event_id"
    " WHERE e.community_id = :c AND e.starts_at >= :start AND e.starts_at < :end"
    " ORDER BY e.starts_at, e.event_id LIMIT 500) e"
)
# The whole answer in one round trip: one row of arrays, and whether the zone is registered.
EVENTS = f"SELECT {ZONED} AS zoned, * FROM ({PERIODS}) periods, ({IN_WINDOW_EVENTS}) events"


@cache
def _events(granularity: str) -> TextClause:
    # Parsed once: text() scans the statement for its parameters each time it is built.
    return text(EVENTS.format(bucket=day_bucket(granularity)))


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
    """Totals, the window's periods and its first 500 events, read by one statement; NewZone
    when the window's zone is not registered (its rollups not filled)."""
    buckets = w.buckets()
    row = (await conn.execute(_events(w.granularity), {"c": community, **w.params(),
                                                        "buckets": buckets})).one()
    if not row.zoned:
        raise NewZone
    series = [_counts(registered, attended, walk_ins, no_shows, new, start=b.isoformat())
              for b, registered, attended, walk_ins, no_shows, new in zip(
                  buckets, row.registered, row.attended, row.walk_ins, row.no_shows, row.new,
                  strict=True)]
    totals = _counts(sum(row.registered), sum(row.attended), sum(row.walk_ins),
                     sum(row.no_shows), sum(row.new))
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


TOTALS = f"""
SELECT (SELECT coalesce(sum(n), 0) FROM registration_days WHERE {IN_WINDOW}) AS registered,
       (SELECT coalesce(sum(n), 0) FROM attendance_days WHERE {IN_WINDOW}) AS attended,
       (SELECT coalesce(sum(n), 0) FROM first_attendance_days WHERE {IN_WINDOW}) AS new,
       (SELECT coalesce(sum(r.registered - r.attended), 0)
        FROM community_events e JOIN event_registrations r {NO_SHOWS}) AS no_shows
"""


def totals_of(row: Any) -> dict[str, int]:
    """`TOTALS`' row as the answer's numbers."""
    return {"registered": int(row.registered), "attended": int(row.attended),
            "no_shows": int(row.no_shows), "new": int(row.new),
            "repeat": int(row.attended) - int(row.new)}


def _counts(registered: int, attended: int, walk_ins: int, no_shows: int, new: int,
            **start: str) -> dict[str, Any]:
    repeat = attended - new
    return {**start, "registered": registered, "attended": attended, "walk_ins": walk_ins,
            "no_shows": no_shows, "new": new, "repeat": repeat,
            "new_to_repeat": ratio(new, repeat),
            "attendance_rate": ratio(attended - walk_ins, registered)}
