"""Decisions about a community event: pure functions from its state to the facts they cause.

Its cycle (docs/events-lifecycle.md): scheduled → registration open (⇄ closed) → live → finished
→ followed up; cancelled from any state before finished. A refused command raises `DomainError`
naming the rule and decides nothing, so nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gatherly.channels import unknown_channel
from gatherly.envelope import DomainEvent
from services.events.state import (
    AFTER,
    ATTENDED,
    BEFORE_LIVE,
    CANCELLABLE,
    CANCELLED,
    DOORS_OPEN,
    FINISHED,
    FOLLOWUP_ASSIGNED,
    FOLLOWUP_DONE,
    REGISTERED,
    REGISTRATION_CANCELLED,
    REGISTRATION_CLOSED,
    REGISTRATION_OPENED,
    RESCHEDULED,
    SCHEDULED,
    WAITLISTED,
    CommunityEvent,
    DomainError,
    Followup,
    Format,
    Registration,
    Status,
    Task,
)


def _refuse_unless(allowed: bool, rule: str, message: str) -> None:
    if not allowed:
        raise DomainError(rule, message)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _check_channel(channel: str, custom: frozenset[str] | None) -> None:
    """A built-in channel or one the community added (`custom`: the gateway's list; None, a
    direct call: any custom slug), by the kernel's one check (gatherly.channels)."""
    refusal = unknown_channel(channel, custom)
    _refuse_unless(refusal is None, "channel", refusal or "")


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_times(starts_at: datetime, ends_at: datetime, time_zone: str) -> None:
    _refuse_unless(ends_at > starts_at, "end_after_start", "an event must end after it starts")
    _refuse_unless(valid_time_zone(time_zone), "time_zone",
                   f"unknown time zone {time_zone!r}; use an IANA name such as Europe/Berlin")


def _transition(event: CommunityEvent, allowed: frozenset[Status], action: str) -> None:
    _refuse_unless(event.status in allowed, "transition",
                   f"cannot {action} an event that is {event.status.value}")


def schedule(
    *, format: Format, starts_at: datetime, ends_at: datetime, time_zone: str, channel: str,
    capacity: int | None = None, place: str | None = None, link: str | None = None,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    _check_times(starts_at, ends_at, time_zone)
    _refuse_unless(capacity is None or capacity >= 1, "capacity",
                   "capacity must be at least 1 (leave it out for no limit)")
    _check_channel(channel, custom_channels)
    _refuse_unless(format is Format.ONLINE or bool(place), "place",
                   f"an {format.value} event needs a place")
    _refuse_unless(format is Format.OFFLINE or bool(link), "link",
                   f"an {format.value} event needs a link")
    data: dict[str, object] = {"format": format.value, "starts_at": _utc(starts_at),
                               "ends_at": _utc(ends_at), "channel": channel}
    if capacity is not None:
        data["capacity"] = capacity
    return [DomainEvent(SCHEDULED, data, starts_at)]


def reschedule(
    event: CommunityEvent, *, starts_at: datetime, ends_at: datetime, time_zone: str, at: datetime
) -> list[DomainEvent]:
    _transition(event, BEFORE_LIVE, "reschedule")
    _check_times(starts_at, ends_at, time_zone)
    return [DomainEvent(RESCHEDULED, {"starts_at": _utc(starts_at), "ends_at": _utc(ends_at)}, at)]


def cancel(event: CommunityEvent, *, at: datetime, reason: str | None = None) -> list[DomainEvent]:
    _transition(event, CANCELLABLE, "cancel")
    data: dict[str, object] = {"cancelled_at": _utc(at)}
    if reason:
        data["reason"] = reason
    return [DomainEvent(CANCELLED, data, at)]


def open_registration(event: CommunityEvent, *, at: datetime) -> list[DomainEvent]:
    _transition(event, frozenset({Status.SCHEDULED, Status.REGISTRATION_CLOSED}),
                "open registration for")
    return [DomainEvent(REGISTRATION_OPENED, {"at": _utc(at)}, at)]


def close_registration(event: CommunityEvent, *, at: datetime) -> list[DomainEvent]:
    _transition(event, frozenset({Status.REGISTRATION_OPEN}), "close registration for")
    return [DomainEvent(REGISTRATION_CLOSED, {"at": _utc(at)}, at)]


def register(
    event: CommunityEvent, *, member_id: str, channel: str, at: datetime,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    """A place if one is free and nobody is waiting for it, else the end of the waitlist."""
    _refuse_unless(event.status is Status.REGISTRATION_OPEN, "registration_not_open",
                   f"registration is not open (the event is {event.status.value})")
    _check_channel(channel, custom_channels)
    current = event.seat(member_id).registration
    _refuse_unless(current in (None, Registration.CANCELLED), "already_registered",
                   f"member {member_id} is already {current.value if current else ''}")
    full = event.capacity is not None and event.registered >= event.capacity
    if full or event.waitlisted:
        return [DomainEvent(WAITLISTED, {"member_id": member_id, "channel": channel,
                                         "at": _utc(at)}, at)]
    return [_registered(member_id, channel, at)]


def _registered(member_id: str, channel: str, at: datetime) -> DomainEvent:
    return DomainEvent(REGISTERED, {"member_id": member_id, "channel": channel,
                                    "registered_at": _utc(at)}, at)


def cancel_registration(
    event: CommunityEvent, *, member_id: str, at: datetime
) -> list[DomainEvent]:
    """Frees the member's place; the longest-waiting member takes it in the same decision."""
    _transition(event, CANCELLABLE, "cancel a registration for")
    seat = event.seat(member_id)
    _refuse_unless(seat.registration in (Registration.REGISTERED, Registration.WAITLISTED),
                   "not_registered", f"member {member_id} has no registration to cancel")
    events = [DomainEvent(REGISTRATION_CANCELLED, {"member_id": member_id, "at": _utc(at)}, at)]
    promoted = event.next_in_line() if seat.registration is Registration.REGISTERED else None
    if promoted is not None:
        events.append(_registered(promoted.member_id, promoted.channel or event.channel, at))
    return events


def check_in(
    event: CommunityEvent, *, member_id: str, at: datetime, walk_in: bool = False,
    channel: str | None = None, custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    """Records attendance once: a second check-in of the same member decides nothing. A
    registered member came through the channel they registered by (held to the community's
    channels then); a walk-in through the one named, or the door's."""
    _refuse_unless(event.status is not Status.CANCELLED, "event_cancelled",
                   "cannot check in to a cancelled event")
    _transition(event, DOORS_OPEN, "check in to")
    seat = event.seat(member_id)
    if seat.attended:
        return []
    registered = seat.registration is Registration.REGISTERED
    _refuse_unless(registered or walk_in, "not_registered",
                   f"member {member_id} is not registered; check them in as a walk-in")
    came_through = seat.channel if registered else channel or _door_channel(event.format)
    _check_channel(came_through or "", None if registered else custom_channels)
    return [DomainEvent(ATTENDED, {"member_id": member_id, "channel": came_through,
                                   "checked_in_at": _utc(at), "walk_in": not registered}, at)]


def _door_channel(format: Format) -> str:
    return "online_event" if format is Format.ONLINE else "offline"


def finish(event: CommunityEvent, *, at: datetime, due_days: int) -> list[DomainEvent]:
    """Finishing opens every follow-up duty, due `due_days` after the event's end."""
    _transition(event, frozenset({Status.LIVE}), "finish")
    _refuse_unless(at >= event.starts_at, "finish_after_start",
                   "an event cannot finish before it starts")
    due_at = _utc(event.ends_at + timedelta(days=due_days))
    return [DomainEvent(FINISHED, {"finished_at": _utc(at)}, at)] + [
        DomainEvent(FOLLOWUP_ASSIGNED, {"task": task.value, "due_at": due_at}, at) for task in Task
    ]


def _duty(event: CommunityEvent, task: str) -> Followup:
    known = {t.value for t in Task}
    _refuse_unless(task in known, "unknown_followup",
                   f"unknown follow-up duty {task!r}; one of {', '.join(sorted(known))}")
    _transition(event, AFTER, "follow up")
    return event.followups[Task(task)]


def assign_followup(
    event: CommunityEvent, *, task: str, at: datetime, assignee: str | None = None,
    due_at: datetime | None = None,
) -> list[DomainEvent]:
    duty = _duty(event, task)
    _refuse_unless(duty.done_at is None, "followup_done", f"the duty {task} is already done")
    data: dict[str, object] = {"task": task, "due_at": _utc(due_at or duty.due_at)}
    if assignee:
        data["assignee"] = assignee
    return [DomainEvent(FOLLOWUP_ASSIGNED, data, at)]


def complete_followup(
    event: CommunityEvent, *, task: str, at: datetime, by_member: str | None = None
) -> list[DomainEvent]:
    duty = _duty(event, task)
    _refuse_unless(duty.done_at is None, "followup_done", f"the duty {task} is already done")
    data: dict[str, object] = {"task": task, "done_at": _utc(at)}
    if by_member:
        data["by_member"] = by_member
    return [DomainEvent(FOLLOWUP_DONE, data, at)]
