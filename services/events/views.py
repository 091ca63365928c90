"""The events read model, written in every command's transaction, and the state commands load.

Loading from these tables instead of replaying the stream keeps a command's cost flat however many
registrations an event has: the row is exactly as current as the stream (same transaction), and
`FOR UPDATE` queues concurrent commands on one event instead of failing them on the version check.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.events.state import (
    ATTENDED,
    FOLLOWUP_ASSIGNED,
    FOLLOWUP_DONE,
    REGISTERED,
    WAITLISTED,
    CommunityEvent,
    Followup,
    Format,
    Registration,
    Seat,
    Status,
    Task,
)

# Codes are read aloud and typed at the door: no 0/O/1/I/L. Ten of 31 symbols is ~50 bits.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


@dataclass(frozen=True, slots=True)
class Details:
    """What people read about an event; kept here, never on the log."""

    title: str
    time_zone: str
    description: str | None = None
    place: str | None = None
    link: str | None = None


async def insert(conn: AsyncConnection, event: CommunityEvent, details: Details) -> None:
    await conn.execute(
        text(
            "INSERT INTO event_list (id, community_id, title, description, format, place, link,"
            " starts_at, ends_at, time_zone, capacity, channel, status, version)"
            " VALUES (:id, :community_id, :title, :description, :format, :place, :link,"
            " :starts_at, :ends_at, :time_zone, :capacity, :channel, :status, :version)"
        ),
        {
            "id": event.id, "community_id": event.community_id, "title": details.title,
            "description": details.description, "format": event.format.value,
            "place": details.place, "link": details.link, "starts_at": event.starts_at,
            "ends_at": event.ends_at, "time_zone": details.time_zone, "capacity": event.capacity,
            "channel": event.channel, "status": event.status.value, "version": event.version,
        },
    )


async def load(
    conn: AsyncConnection, community_id: str, event_id: str, *, members: Iterable[str] = (),
    waitlist_head: bool = False, with_followups: bool = False,
) -> CommunityEvent | None:
    """The event with the seats of `members` (plus the waitlist's head) and, if asked, its
    follow-ups: only what the command needs, so its cost does not grow with the event."""
    row = (
        await conn.execute(
            text(
                "SELECT * FROM event_list WHERE id = CAST(:id AS uuid) AND community_id = :c"
                " FOR UPDATE"
            ),
            {"id": event_id, "c": community_id},
        )
    ).first()
    if row is None:
        return None
    seats = await _seats(conn, event_id, list(members), waitlist_head)
    followups = (
        (
            await conn.execute(
                text("SELECT * FROM event_followup WHERE event_id = CAST(:id AS uuid)"),
                {"id": event_id},
            )
        ).all()
        if with_followups
        else []
    )
    return CommunityEvent(
        id=str(row.id), community_id=row.community_id, format=Format(row.format),
        starts_at=row.starts_at, ends_at=row.ends_at, channel=row.channel,
        status=Status(row.status), capacity=row.capacity, registered=row.registered,
        waitlisted=row.waitlisted, attended=row.attended,
        seats={str(s.member_id): seat(s) for s in seats},
        followups={Task(f.task): followup(f) for f in followups},
        cancel_reason=row.cancel_reason, finished_at=row.finished_at, version=row.version,
    )


async def _seats(
    conn: AsyncConnection, event_id: str, members: list[str], waitlist_head: bool
) -> list[Any]:
    query = (
        "SELECT * FROM event_seat WHERE event_id = CAST(:id AS uuid)"
        " AND member_id = ANY(CAST(:members AS uuid[]))"
    )
    if waitlist_head:
        # Its own branch, so each side uses its index: the primary key, the waitlist's order.
        query = (
            f"({query}) UNION (SELECT * FROM event_seat WHERE event_id = CAST(:id AS uuid)"
            " AND registration = 'waitlisted' ORDER BY queued LIMIT 1)"
        )
    return list((await conn.execute(text(query), {"id": event_id, "members": members})).all())


async def member_with_code(conn: AsyncConnection, event_id: str, code: str) -> str | None:
    found = await conn.scalar(
        text(
            "SELECT member_id::text FROM event_seat"
            " WHERE event_id = CAST(:id AS uuid) AND code = :code"
        ),
        {"id": event_id, "code": code.strip().upper().replace("-", "")},
    )
    return str(found) if found else None


def seat(row: Any) -> Seat:
    registration = Registration(row.registration) if row.registration else None
    return Seat(str(row.member_id), registration, row.channel, row.queued,
                row.checked_in_at is not None)


def followup(row: Any) -> Followup:
    return Followup(
        Task(row.task), row.due_at, str(row.assignee) if row.assignee else None, row.done_at,
        str(row.by_member) if row.by_member else None,
    )


async def record(conn: AsyncConnection, event: CommunityEvent, envelopes: list[Envelope]) -> None:
    """Bring the read model to `event`, the state after `envelopes` were appended."""
    await conn.execute(
        text(
            "UPDATE event_list SET starts_at = :starts_at, ends_at = :ends_at, status = :status,"
            " registered = :registered, waitlisted = :waitlisted, attended = :attended,"
            " cancel_reason = :cancel_reason, finished_at = :finished_at, version = :version"
            " WHERE id = CAST(:id AS uuid)"
        ),
        {
            "id": event.id, "starts_at": event.starts_at, "ends_at": event.ends_at,
            "status": event.status.value, "registered": event.registered,
            "waitlisted": event.waitlisted, "attended": event.attended,
            "cancel_reason": event.cancel_reason, "finished_at": event.finished_at,
            "version": event.version,
        },
    )
    for envelope in envelopes:
        if "member_id" in envelope.data:
            await _record_seat(conn, event, envelope)
        elif envelope.type in (FOLLOWUP_ASSIGNED, FOLLOWUP_DONE):
            await _record_followup(conn, event, event.followups[Task(envelope.data["task"])])


async def _record_seat(conn: AsyncConnection, event: CommunityEvent, envelope: Envelope) -> None:
    now = event.seat(str(envelope.data["member_id"]))
    registering = envelope.type in (REGISTERED, WAITLISTED)
    checking_in = envelope.type == ATTENDED
    await conn.execute(
        text(
            "INSERT INTO event_seat AS s (event_id, member_id, registration, channel, code,"
            " registered_at, registered_seq, queued, checked_in_at, attended_seq, walk_in)"
            " VALUES (CAST(:event_id AS uuid), CAST(:member_id AS uuid), :registration, :channel,"
            " :code, :registered_at, :registered_seq, :queued, :checked_in_at, :attended_seq,"
            " :walk_in)"
            " ON CONFLICT (event_id, member_id) DO UPDATE SET"
            " registration = excluded.registration, channel = excluded.channel,"
            " code = coalesce(s.code, excluded.code), queued = excluded.queued,"
            " registered_at = coalesce(excluded.registered_at, s.registered_at),"
            " registered_seq = coalesce(excluded.registered_seq, s.registered_seq),"
            " checked_in_at = coalesce(s.checked_in_at, excluded.checked_in_at),"
            " attended_seq = coalesce(s.attended_seq, excluded.attended_seq),"
            " walk_in = coalesce(s.walk_in, excluded.walk_in)"
        ),
        {
            "event_id": event.id, "member_id": now.member_id,
            "registration": now.registration.value if now.registration else None,
            "channel": now.channel or envelope.data.get("channel"),
            "code": new_code() if registering else None,
            "registered_at": envelope.time if registering else None,
            "registered_seq": envelope.sequence if envelope.type == REGISTERED else None,
            "queued": now.queued,
            "checked_in_at": envelope.time if checking_in else None,
            "attended_seq": envelope.sequence if checking_in else None,
            "walk_in": envelope.data.get("walk_in") if checking_in else None,
        },
    )


async def _record_followup(conn: AsyncConnection, event: CommunityEvent, duty: Followup) -> None:
    await conn.execute(
        text(
            "INSERT INTO event_followup (event_id, task, community_id, assignee, due_at, done_at,"
            " by_member) VALUES (CAST(:event_id AS uuid), :task, :community_id,"
            " CAST(:assignee AS uuid), :due_at, :done_at, CAST(:by_member AS uuid))"
            " ON CONFLICT (event_id, task) DO UPDATE SET assignee = excluded.assignee,"
            " due_at = excluded.due_at, done_at = excluded.done_at, by_member = excluded.by_member"
        ),
        {
            "event_id": event.id, "task": duty.task.value, "community_id": event.community_id,
            "assignee": duty.assignee, "due_at": duty.due_at, "done_at": duty.done_at,
            "by_member": duty.by_member,
        },
    )


async def time_zone(conn: AsyncConnection, event_id: str) -> str | None:
    found = await conn.scalar(
        text("SELECT time_zone FROM event_list WHERE id = CAST(:id AS uuid)"), {"id": event_id}
    )
    return str(found) if found else None


async def set_time_zone(conn: AsyncConnection, event_id: str, zone: str) -> None:
    await conn.execute(
        text("UPDATE event_list SET time_zone = :zone WHERE id = CAST(:id AS uuid)"),
        {"id": event_id, "zone": zone},
    )
