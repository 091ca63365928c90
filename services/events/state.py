"""The community event's state and how each stored event changes it: pure, no I/O.

A big event has thousands of members, so the state a command decides on holds the event's
counters and only the seats that command needs (the member concerned, the head of the waitlist).
`evolve` keeps counters and those seats exact, and `replay` of a whole stream gives every seat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gatherly.envelope import Envelope

PREFIX = "gatherly.event."
SCHEDULED = PREFIX + "scheduled"
RESCHEDULED = PREFIX + "rescheduled"
CANCELLED = PREFIX + "cancelled"
REGISTRATION_OPENED = PREFIX + "registration_opened"
REGISTRATION_CLOSED = PREFIX + "registration_closed"
REGISTERED = PREFIX + "registered"
WAITLISTED = PREFIX + "waitlisted"
REGISTRATION_CANCELLED = PREFIX + "registration_cancelled"
ATTENDED = PREFIX + "attended"
FINISHED = PREFIX + "finished"
FOLLOWUP_ASSIGNED = PREFIX + "followup_assigned"
FOLLOWUP_DONE = PREFIX + "followup_done"


class Format(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    HYBRID = "hybrid"


class Status(StrEnum):
    SCHEDULED = "scheduled"
    REGISTRATION_OPEN = "registration_open"
    REGISTRATION_CLOSED = "registration_closed"
    LIVE = "live"
    FINISHED = "finished"
    FOLLOWED_UP = "followed_up"
    CANCELLED = "cancelled"


class Task(StrEnum):
    """The follow-up duties of a finished event, in the order a team usually does them."""

    THANKS_SENT = "thanks_sent"
    MATERIALS_SENT = "materials_sent"
    FEEDBACK_COLLECTED = "feedback_collected"
    MEMBERS_INTRODUCED = "members_introduced"
    INVITED_TO_COMMUNITY = "invited_to_community"
    HISTORY_WRITTEN = "history_written"
    PROMOTED = "promoted"


class Registration(StrEnum):
    REGISTERED = "registered"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


BEFORE_LIVE = frozenset({Status.SCHEDULED, Status.REGISTRATION_OPEN, Status.REGISTRATION_CLOSED})
DOORS_OPEN = frozenset({Status.REGISTRATION_OPEN, Status.REGISTRATION_CLOSED, Status.LIVE})
CANCELLABLE = BEFORE_LIVE | {Status.LIVE}
AFTER = frozenset({Status.FINISHED, Status.FOLLOWED_UP})


class DomainError(Exception):
    """A command the event's rules refuse; `rule` is a stable name a client can branch on."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Seat:
    """One member's place at one event: their registration (if any) and whether they came."""

    member_id: str
    registration: Registration | None = None
    channel: str | None = None
    queued: int = 0  # the event version that put them in line: the waitlist's order
    attended: bool = False


@dataclass(frozen=True, slots=True)
class Followup:
    task: Task
    due_at: datetime
    assignee: str | None = None
    done_at: datetime | None = None
    by_member: str | None = None


@dataclass(frozen=True, slots=True)
class CommunityEvent:
    id: str
    community_id: str
    format: Format
    starts_at: datetime
    ends_at: datetime
    channel: str
    status: Status = Status.SCHEDULED
    capacity: int | None = None
    registered: int = 0
    waitlisted: int = 0
    attended: int = 0
    seats: Mapping[str, Seat] = field(default_factory=dict)  # only those a command needs
    followups: Mapping[Task, Followup] = field(default_factory=dict)
    cancel_reason: str | None = None
    finished_at: datetime | None = None
    version: int = 0

    def seat(self, member_id: str) -> Seat:
        return self.seats.get(member_id) or Seat(member_id)

    def next_in_line(self) -> Seat | None:
        """The longest-waiting member among the seats loaded (the loader includes the head)."""
        waiting = [s for s in self.seats.values() if s.registration is Registration.WAITLISTED]
        return min(waiting, key=lambda s: s.queued) if waiting else None



def _at(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _seat_event(state: CommunityEvent, event: Envelope) -> CommunityEvent:
    """Registrations, the waitlist and check-ins: the member's seat and the event's counters."""
    member_id = str(event.data["member_id"])
    seat = state.seat(member_id)
    before = seat.registration
    counts = {"registered": state.registered, "waitlisted": state.waitlisted,
              "attended": state.attended}
    if event.type == REGISTERED:
        seat = replace(seat, registration=Registration.REGISTERED,
                       channel=str(event.data["channel"]))
    elif event.type == WAITLISTED:
        seat = replace(seat, registration=Registration.WAITLISTED,
                       channel=str(event.data["channel"]), queued=event.sequence)
    elif event.type == REGISTRATION_CANCELLED:
        seat = replace(seat, registration=Registration.CANCELLED)
    elif event.type == ATTENDED:
        seat = replace(seat, attended=True)
        counts["attended"] += 1
    if before is not seat.registration:
        for registration, delta in ((before, -1), (seat.registration, 1)):
            if registration in (Registration.REGISTERED, Registration.WAITLISTED):
                counts[registration.value] += delta
    status = Status.LIVE if event.type == ATTENDED else state.status
    return replace(state, seats={**state.seats, member_id: seat}, status=status,
                   registered=counts["registered"], waitlisted=counts["waitlisted"],
                   attended=counts["attended"])


def _followup_event(state: CommunityEvent, event: Envelope) -> CommunityEvent:
    task = Task(str(event.data["task"]))
    duty = state.followups.get(task)
    if event.type == FOLLOWUP_ASSIGNED:
        duty = Followup(task, _at(event.data["due_at"]), event.data.get("assignee"),
                        duty.done_at if duty else None, duty.by_member if duty else None)
    else:
        assert duty is not None, f"{event.type} before the duty was opened"
        duty = replace(duty, done_at=_at(event.data["done_at"]),
                       by_member=event.data.get("by_member"))
    followups = {**state.followups, task: duty}
    all_done = len(followups) == len(Task) and all(d.done_at for d in followups.values())
    return replace(state, followups=followups,
                   status=Status.FOLLOWED_UP if all_done else state.status)


_STATUS_AFTER = {
    REGISTRATION_OPENED: Status.REGISTRATION_OPEN,
    REGISTRATION_CLOSED: Status.REGISTRATION_CLOSED,
}


def evolve(state: CommunityEvent | None, event: Envelope) -> CommunityEvent:
    """The event after `event`; `state` is None before it was scheduled."""
    if event.type == SCHEDULED:
        return CommunityEvent(
            id=event.subject, community_id=event.community_id,
            format=Format(str(event.data["format"])), starts_at=_at(event.data["starts_at"]),
            ends_at=_at(event.data["ends_at"]), channel=str(event.data["channel"]),
            capacity=event.data.get("capacity"), version=event.sequence,
        )
    if state is None:
        raise DomainError("not_scheduled", f"{event.type} before the event was scheduled")
    if "member_id" in event.data:
        state = _seat_event(state, event)
    elif event.type in (FOLLOWUP_ASSIGNED, FOLLOWUP_DONE):
        state = _followup_event(state, event)
    elif event.type == RESCHEDULED:
        state = replace(state, starts_at=_at(event.data["starts_at"]),
                        ends_at=_at(event.data["ends_at"]))
    elif event.type == CANCELLED:
        state = replace(state, status=Status.CANCELLED, cancel_reason=event.data.get("reason"))
    elif event.type == FINISHED:
        state = replace(state, status=Status.FINISHED,
                        finished_at=_at(event.data["finished_at"]))
    elif event.type in _STATUS_AFTER:
        state = replace(state, status=_STATUS_AFTER[event.type])
    return replace(state, version=event.sequence)


def replay(events: list[Envelope]) -> CommunityEvent | None:
    state: CommunityEvent | None = None
    for event in events:
        state = evolve(state, event)
    return state
