"""The feedback aggregate: submitted → answered → resolved, in that order only. Pure.

The member's words and the team's answer are the service's own (erasable) record; the events
carry who, about what, the rating and when.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gatherly.envelope import DomainEvent, Envelope
from services.engagement.domain import (
    DomainError,
    require_channel,
    require_not_before,
    require_not_future,
)

SUBMITTED = "gatherly.feedback.submitted"
ANSWERED = "gatherly.feedback.answered"
RESOLVED = "gatherly.feedback.resolved"
ABOUT_KINDS = ("event", "content", "community")


class FeedbackStatus(StrEnum):
    SUBMITTED = "submitted"
    ANSWERED = "answered"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Feedback:
    id: str
    community_id: str
    member_id: str
    about_kind: str
    about_id: str | None
    rating: int | None
    channel: str
    submitted_at: datetime
    status: FeedbackStatus = FeedbackStatus.SUBMITTED
    answered_at: datetime | None = None
    answered_by: str | None = None
    resolved_at: datetime | None = None
    version: int = 0


def submit(
    *, member_id: str, about_kind: str, about_id: str | None, rating: int | None, channel: str,
    submitted_at: datetime, now: datetime, custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    if about_kind not in ABOUT_KINDS:
        raise DomainError(f"feedback cannot be about {about_kind!r}", field="about_kind")
    if about_kind == "community" and about_id is not None:
        raise DomainError("feedback about the community names no about_id", field="about_id")
    if about_kind != "community" and about_id is None:
        raise DomainError(f"feedback about an {about_kind} names its about_id", field="about_id")
    if rating is not None and not 1 <= rating <= 5:
        raise DomainError("rating must be between 1 and 5", field="rating")
    require_channel(channel, custom_channels)
    require_not_future(submitted_at, now, field="submitted_at")
    data: dict[str, object] = {
        "member_id": member_id, "about_kind": about_kind, "channel": channel,
        "submitted_at": submitted_at.isoformat(),
    }
    if about_id is not None:
        data["about_id"] = about_id
    if rating is not None:
        data["rating"] = rating
    return [DomainEvent(SUBMITTED, data, submitted_at)]


def answer(
    feedback: Feedback, *, at: datetime, now: datetime, by_member: str | None = None
) -> list[DomainEvent]:
    if feedback.status is not FeedbackStatus.SUBMITTED:
        raise DomainError(f"{feedback.status} feedback cannot be answered")
    return [_transition(ANSWERED, at, feedback.submitted_at, now, by_member)]


def resolve(
    feedback: Feedback, *, at: datetime, now: datetime, by_member: str | None = None
) -> list[DomainEvent]:
    if feedback.status is FeedbackStatus.RESOLVED:
        raise DomainError("resolved feedback cannot be resolved again")
    if feedback.status is not FeedbackStatus.ANSWERED or feedback.answered_at is None:
        raise DomainError("feedback is answered before it is resolved")
    return [_transition(RESOLVED, at, feedback.answered_at, now, by_member)]


def _transition(
    event_type: str, at: datetime, previous: datetime, now: datetime, by_member: str | None
) -> DomainEvent:
    require_not_future(at, now, field="at")
    require_not_before(at, previous, field="at", what="the previous step")
    data: dict[str, object] = {"at": at.isoformat()}
    if by_member:
        data["by_member"] = by_member
    return DomainEvent(event_type, data, at)


def evolve(state: Feedback | None, event: Envelope) -> Feedback:
    if event.type == SUBMITTED:
        return Feedback(
            id=event.subject, community_id=event.community_id,
            member_id=str(event.data["member_id"]), about_kind=str(event.data["about_kind"]),
            about_id=event.data.get("about_id"), rating=event.data.get("rating"),
            channel=str(event.data["channel"]), submitted_at=event.time, version=event.sequence,
        )
    if state is None:
        raise DomainError(f"{event.type} before the feedback was submitted")
    if event.type == ANSWERED:
        return replace(state, status=FeedbackStatus.ANSWERED, answered_at=event.time,
                       answered_by=event.data.get("by_member"), version=event.sequence)
    if event.type == RESOLVED:
        return replace(state, status=FeedbackStatus.RESOLVED, resolved_at=event.time,
                       version=event.sequence)
    return replace(state, version=event.sequence)


def replay(events: list[Envelope]) -> Feedback | None:
    state: Feedback | None = None
    for event in events:
        state = evolve(state, event)
    return state
