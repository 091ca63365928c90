"""Read-side queries of the events read model: pages of events, seats and follow-up duties.

Every page is keyset-paginated on a unique, stable order, so a cursor never skips or repeats a row
while others write.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


class When(StrEnum):
    UPCOMING = "upcoming"
    LIVE = "live"
    PAST = "past"
    CANCELLED = "cancelled"


WHEN_STATUSES = {
    When.UPCOMING: ["scheduled", "registration_open", "registration_closed"],
    When.LIVE: ["live"],
    When.PAST: ["finished", "followed_up"],
    When.CANCELLED: ["cancelled"],
}


class SeatList(StrEnum):
    """The three lists of people an event has; each is ordered by the event version of its fact."""

    REGISTRATIONS = "registrations"
    WAITLIST = "waitlist"
    ATTENDEES = "attendees"


_SEAT_ORDER = {
    SeatList.REGISTRATIONS: ("registered_seq", "registration = 'registered'"),
    SeatList.WAITLIST: ("queued", "registration = 'waitlisted'"),
    SeatList.ATTENDEES: ("attended_seq", "checked_in_at IS NOT NULL"),
}


async def event(conn: AsyncConnection, community_id: str, event_id: str) -> Any | None:
    return (
        await conn.execute(
            text("SELECT * FROM event_list WHERE id = CAST(:id AS uuid) AND community_id = :c"),
            {"id": event_id, "c": community_id},
        )
    ).first()


async def events(
    conn: AsyncConnection, community_id: str, *, when: When | None, format: str | None,
    channel: str | None, after: tuple[datetime, str] | None, limit: int,
) -> tuple[list[Any], tuple[datetime, str] | None]:
    """Events by start time (past ones most recent first); the second value starts the next page."""
    newest_first = when is When.PAST
    compare, order = (("<", "DESC") if newest_first else (">", "ASC"))
    rows = (
        await conn.execute(
            text(
                "SELECT * FROM event_list WHERE community_id = :c"
                " AND (CAST(:statuses AS text[]) IS NULL"
                "  OR status = ANY(CAST(:statuses AS text[])))"
                " AND (CAST(:format AS text) IS NULL OR format = :format)"
                " AND (CAST(:channel AS text) IS NULL OR channel = :channel)"
                " AND (CAST(:after_start AS timestamptz) IS NULL"
                f"  OR (starts_at, id) {compare} (:after_start, CAST(:after_id AS uuid)))"
                f" ORDER BY starts_at {order}, id {order} LIMIT :limit"
            ),
            {
                "c": community_id, "statuses": WHEN_STATUSES[when] if when else None,
                "format": format, "channel": channel,
                "after_start": after[0] if after else None, "after_id": after[1] if after else None,
                "limit": limit + 1,
            },
        )
    ).all()
    more = len(rows) > limit
    rows = list(rows[:limit])
    return rows, ((rows[-1].starts_at, str(rows[-1].id)) if more and rows else None)


async def seats(
    conn: AsyncConnection, event_id: str, which: SeatList, *, after: int, limit: int
) -> tuple[list[Any], int | None]:
    column, condition = _SEAT_ORDER[which]
    rows = (
        await conn.execute(
            text(
                f"SELECT *, {column} AS seq FROM event_seat WHERE event_id = CAST(:id AS uuid)"
                f" AND {condition} AND {column} > :after ORDER BY {column} LIMIT :limit"
            ),
            {"id": event_id, "after": after, "limit": limit + 1},
        )
    ).all()
    more = len(rows) > limit
    rows = list(rows[:limit])
    return rows, (rows[-1].seq if more and rows else None)


async def followups_of(conn: AsyncConnection, event_id: str) -> list[Any]:
    return list(
        (
            await conn.execute(
                text("SELECT * FROM event_followup WHERE event_id = CAST(:id AS uuid)"),
                {"id": event_id},
            )
        ).all()
    )


async def followups(
    conn: AsyncConnection, community_id: str, *, overdue_at: datetime | None, done: bool | None,
    assignee: str | None, after: tuple[datetime, str, str] | None, limit: int,
) -> tuple[list[Any], tuple[datetime, str, str] | None]:
    """Duties across the community's events by due date; `overdue_at` keeps the open, late ones."""
    rows = (
        await conn.execute(
            text(
                "SELECT * FROM event_followup WHERE community_id = :c"
                " AND (CAST(:overdue_at AS timestamptz) IS NULL"
                "  OR (done_at IS NULL AND due_at < :overdue_at))"
                " AND (CAST(:done AS boolean) IS NULL OR (done_at IS NOT NULL) = :done)"
                " AND (CAST(:assignee AS uuid) IS NULL OR assignee = CAST(:assignee AS uuid))"
                " AND (CAST(:after_due AS timestamptz) IS NULL OR (due_at, event_id, task)"
                "  > (:after_due, CAST(:after_event AS uuid), :after_task))"
                " ORDER BY due_at, event_id, task LIMIT :limit"
            ),
            {
                "c": community_id, "overdue_at": overdue_at, "done": done, "assignee": assignee,
                "after_due": after[0] if after else None,
                "after_event": after[1] if after else None,
                "after_task": after[2] if after else None, "limit": limit + 1,
            },
        )
    ).all()
    more = len(rows) > limit
    rows = list(rows[:limit])
    last = rows[-1] if more and rows else None
    return rows, ((last.due_at, str(last.event_id), last.task) if last else None)


async def seat(conn: AsyncConnection, event_id: str, member_id: str) -> Any | None:
    return (
        await conn.execute(
            text(
                "SELECT * FROM event_seat WHERE event_id = CAST(:e AS uuid)"
                " AND member_id = CAST(:m AS uuid)"
            ),
            {"e": event_id, "m": member_id},
        )
    ).first()
