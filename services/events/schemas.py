"""The events API's request and response bodies, and how read-model rows become responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatherly.web import Moment
from services.events.state import Format, Registration, Status, Task

MAX_PLACES = 10_000_000  # the store's `integer` holds 2^31; no venue comes near


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventSchedule(Command):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    format: Format
    place: str | None = Field(default=None, min_length=1, max_length=500,
                              description="where it happens; required unless online")
    link: str | None = Field(default=None, min_length=1, max_length=2000,
                             description="where to join; required unless offline")
    starts_at: Moment = Field(description="ISO 8601 with offset; stored in UTC")
    ends_at: Moment
    time_zone: str = Field(min_length=1, max_length=64, examples=["Europe/Berlin"],
                           description="IANA name the event is shown in")
    capacity: int | None = Field(default=None, le=MAX_PLACES,
                                 description="places; leave out for no limit")
    channel: str = Field(min_length=2, max_length=32, description="where it is announced")


class EventReschedule(Command):
    starts_at: Moment
    ends_at: Moment
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)


class EventCancel(Command):
    reason: str | None = Field(default=None, min_length=1, max_length=500)
    cancelled_at: Moment | None = None


class Transition(Command):
    """A transition that carries only when it happened (defaults to now)."""

    at: Moment | None = None


class EventFinish(Command):
    finished_at: Moment | None = None


class RegistrationCreate(Command):
    member_id: uuid.UUID = Field(description="a member id of the members service (not checked)")
    channel: str = Field(min_length=2, max_length=32, description="how they came to register")
    registered_at: Moment | None = None


class CheckInCreate(Command):
    member_id: uuid.UUID | None = None
    code: str | None = Field(default=None, min_length=4, max_length=32,
                             description="the code given at registration")
    walk_in: bool = Field(default=False, description="the member came without registering")
    channel: str | None = Field(default=None, min_length=2, max_length=32,
                                description="a walk-in's channel (default offline/online_event)")
    checked_in_at: Moment | None = None

    @model_validator(mode="after")
    def one_way_to_name_the_member(self) -> Self:
        if (self.member_id is None) == (self.code is None):
            raise ValueError("give exactly one of member_id or code")
        if self.walk_in and self.member_id is None:
            raise ValueError("a walk-in is checked in by member_id")
        return self


class FollowupAssign(Command):
    assignee: uuid.UUID | None = Field(default=None, description="the member who does it")
    due_at: Moment | None = Field(default=None, description="defaults to the current one")


class FollowupDone(Command):
    by_member: uuid.UUID | None = None
    done_at: Moment | None = None


class FollowupPublic(BaseModel):
    event_id: str
    task: Task
    assignee: str | None
    due_at: datetime
    done_at: datetime | None
    by_member: str | None
    overdue: bool


class EventPublic(BaseModel):
    id: str
    community_id: str
    title: str
    description: str | None
    format: Format
    place: str | None
    link: str | None
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    capacity: int | None
    channel: str
    status: Status
    registered: int
    waitlisted: int
    attended: int
    cancel_reason: str | None
    finished_at: datetime | None
    version: int


class EventDetail(EventPublic):
    followups: list[FollowupPublic]
    links: dict[str, str] = Field(description="the event's registrations, waitlist and attendees")


class SeatPublic(BaseModel):
    member_id: str
    registration: Registration | None
    channel: str | None
    code: str | None = Field(description="shown at the door to check in")
    registered_at: datetime | None
    checked_in_at: datetime | None
    walk_in: bool | None


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None


class SeatPage(BaseModel):
    items: list[SeatPublic]
    next_cursor: str | None


class FollowupPage(BaseModel):
    items: list[FollowupPublic]
    next_cursor: str | None


SeatKind = Literal["registrations", "waitlist", "attendees"]


def event_public(row: Any) -> EventPublic:
    return EventPublic.model_validate({**row._asdict(), "id": str(row.id)})


def followup_public(row: Any, now: datetime) -> FollowupPublic:
    return FollowupPublic(
        event_id=str(row.event_id), task=Task(row.task),
        assignee=str(row.assignee) if row.assignee else None, due_at=row.due_at,
        done_at=row.done_at, by_member=str(row.by_member) if row.by_member else None,
        overdue=row.done_at is None and row.due_at < now,
    )


def seat_public(row: Any) -> SeatPublic:
    return SeatPublic(
        member_id=str(row.member_id), registration=row.registration, channel=row.channel,
        code=row.code, registered_at=row.registered_at, checked_in_at=row.checked_in_at,
        walk_in=row.walk_in,
    )
