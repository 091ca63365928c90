"""Community-event facts: the event's schedule and outcome, registrations and attendances per
(event, member), follow-up tasks. Attendances may arrive before the member's join or the
event's schedule; they are kept as they come and joined at read time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.kpi.facts import changing, participants
from services.kpi.facts.common import Identities, fact_time, insert_rows
from services.kpi.facts.rollups import deltas

SCHEDULE = {
    "gatherly.event.scheduled": ("channel", "starts_at", "ends_at"),
    "gatherly.event.rescheduled": ("starts_at", "ends_at"),
    "gatherly.event.cancelled": ("cancelled_at",),
    "gatherly.event.finished": ("finished_at",),
}
EVENT_COLUMNS = ("channel", "starts_at", "ends_at", "cancelled_at", "finished_at")
# Each member's first attendance (earliest check-in, ties by event id) from the attendances the
# batch actually inserted; the smaller one wins, so the order facts arrive in never matters.
FIRST_ATTENDANCES = (
    "fa AS (INSERT INTO first_attendances AS t (community_id, member_id, checked_in_at, event_id)"
    " SELECT DISTINCT ON (community_id, member_id) community_id, member_id, checked_in_at,"
    " event_id FROM ins ORDER BY community_id, member_id, checked_in_at, event_id"
    " ON CONFLICT (community_id, member_id) DO UPDATE SET"
    " checked_in_at = excluded.checked_in_at, event_id = excluded.event_id"
    " WHERE (excluded.checked_in_at, excluded.event_id) < (t.checked_in_at, t.event_id))"
)
# Every community's first attendances from what is stored (a migration, a bulk load).
FIRST_ATTENDANCES_FROM_FACTS = (
    "INSERT INTO first_attendances SELECT DISTINCT ON (community_id, member_id) community_id,"
    " member_id, checked_in_at, event_id FROM attendances"
    " ORDER BY community_id, member_id, checked_in_at, event_id"
)
Key = tuple[str, str]


async def apply(conn: AsyncConnection, events: list[Envelope], ids: Identities) -> None:
    schedule: dict[Key, dict[str, Any]] = {}
    registrations: dict[tuple[str, str, str], dict[str, Any]] = {}
    attendances: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    followups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in events:
        if not e.type.startswith("gatherly.event."):
            continue
        at, event_key = fact_time(e), (e.community_id, e.subject)
        if e.type in SCHEDULE:
            _fold_schedule(schedule.setdefault(event_key, {}), e, at)
        elif e.type in ("gatherly.event.registered", "gatherly.event.registration_cancelled"):
            key = (*event_key, ids.key(e.community_id, str(e.data["member_id"])))
            _fold_registration(registrations.setdefault(key, {}), e, at)
        elif e.type == "gatherly.event.attended":
            key = (*event_key, ids.key(e.community_id, str(e.data["member_id"])))
            # A second check-in changes nothing: the first one counts.
            attendances.setdefault(key, (e.data["channel"], at, bool(e.data["walk_in"])))
        elif e.type == "gatherly.event.followup_assigned":
            followups.setdefault((*event_key, str(e.data["task"])), {})["assigned"] = True
        elif e.type == "gatherly.event.followup_done":
            row = followups.setdefault((*event_key, str(e.data["task"])), {})
            row["done_at"] = min(at, row.get("done_at", at))
    await _write(conn, schedule, registrations, attendances, followups)


def _fold_schedule(row: dict[str, Any], e: Envelope, at: datetime) -> None:
    for column in SCHEDULE[e.type]:
        if column in ("cancelled_at", "finished_at"):
            row[column] = at
        elif column == "channel":
            row[column] = e.data["channel"]
        else:
            row[column] = datetime.fromisoformat(e.data[column])


def _fold_registration(row: dict[str, Any], e: Envelope, at: datetime) -> None:
    if e.type == "gatherly.event.registered":
        row.update(channel=e.data["channel"], registered_at=at, cancelled_at=None)
    else:
        row["cancelled_at"] = at


async def _write(
    conn: AsyncConnection,
    schedule: dict[Key, dict[str, Any]],
    registrations: dict[tuple[str, str, str], dict[str, Any]],
    attendances: dict[tuple[str, str, str], tuple[Any, ...]],
    followups: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    # An event's facts come in order, so a later value in this batch replaces the stored one.
    await insert_rows(
        conn, "community_events",
        [("community_id", "text"), ("event_id", "text"), ("channel", "text"),
         ("starts_at", "timestamptz"), ("ends_at", "timestamptz"),
         ("cancelled_at", "timestamptz"), ("finished_at", "timestamptz")],
        [(*key, *(row.get(c) for c in EVENT_COLUMNS)) for key, row in schedule.items()],
        "ON CONFLICT (community_id, event_id) DO UPDATE SET "
        + ", ".join(f"{c} = coalesce(excluded.{c}, t.{c})" for c in EVENT_COLUMNS),
    )
    await insert_rows(
        conn, "registrations",
        [("community_id", "text"), ("event_id", "text"), ("member_id", "text"),
         ("channel", "text"), ("registered_at", "timestamptz"), ("cancelled_at", "timestamptz")],
        [(*key, row.get("channel"), row.get("registered_at"), row.get("cancelled_at"))
         for key, row in registrations.items()],
        "ON CONFLICT (community_id, event_id, member_id) DO UPDATE SET"
        " channel = coalesce(excluded.channel, t.channel),"
        " registered_at = coalesce(excluded.registered_at, t.registered_at),"
        " cancelled_at = excluded.cancelled_at",
        then=changing.DELTAS["registrations"], keys=changing.KEYS["registrations"],
    )
    await insert_rows(
        conn, "attendances",
        [("community_id", "text"), ("event_id", "text"), ("member_id", "text"),
         ("channel", "text"), ("checked_in_at", "timestamptz"), ("walk_in", "bool")],
        [(*key, *value) for key, value in attendances.items()],
        then=[FIRST_ATTENDANCES, *deltas("attendances"),
              f"ea AS ({changing.EVENT_ATTENDANCES})", *participants.DELTAS],
    )
    await insert_rows(
        conn, "followups",
        [("community_id", "text"), ("event_id", "text"), ("task", "text"),
         ("assigned", "bool"), ("done_at", "timestamptz")],
        [(*key, row.get("assigned", False), row.get("done_at")) for key, row in followups.items()],
        "ON CONFLICT (community_id, event_id, task) DO UPDATE SET"
        " assigned = t.assigned OR excluded.assigned,"
        " done_at = least(excluded.done_at, t.done_at)",
    )
