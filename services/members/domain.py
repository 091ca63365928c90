"""The member aggregate: pure decisions and state, no I/O.

A member joins a community through a channel, may leave, and may come back. Personal data never
enters these events (DESIGN §9): it lives in the service's erasable store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gatherly.envelope import DomainEvent, Envelope

JOINED = "gatherly.member.joined"
REJOINED = "gatherly.member.rejoined"
LEFT = "gatherly.member.left"

BUILT_IN_CHANNELS = frozenset(
    {"telegram", "vk", "facebook", "email", "youtube", "website", "offline", "online_event",
     "referral"}
)
CHANNEL_SLUG = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")


class MemberStatus(StrEnum):
    ACTIVE = "active"
    LEFT = "left"


class DomainError(Exception):
    """A command that the member's current state does not allow."""


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    community_id: str
    channel: str
    status: MemberStatus
    joined_at: datetime
    invited_by: str | None = None
    external_ref: str | None = None
    left_at: datetime | None = None
    version: int = 0


def valid_channel(channel: str) -> bool:
    """A built-in channel, or a custom slug a community may add."""
    return channel in BUILT_IN_CHANNELS or bool(CHANNEL_SLUG.match(channel))


def join(
    member_id: str,
    *,
    channel: str,
    joined_at: datetime,
    invited_by: str | None = None,
    external_ref: str | None = None,
) -> list[DomainEvent]:
    if not valid_channel(channel):
        raise DomainError(f"unknown channel {channel!r}")
    if invited_by == member_id:
        raise DomainError("a member cannot invite themselves")
    data: dict[str, object] = {"channel": channel, "joined_at": joined_at.isoformat()}
    if invited_by:
        data["invited_by"] = invited_by
    if external_ref:
        data["external_ref"] = external_ref
    return [DomainEvent(JOINED, data, joined_at)]


def leave(member: Member, *, left_at: datetime, reason: str | None = None) -> list[DomainEvent]:
    if member.status is MemberStatus.LEFT:
        raise DomainError("the member has already left")
    if left_at < member.joined_at:
        raise DomainError("a member cannot leave before joining")
    data: dict[str, object] = {"left_at": left_at.isoformat()}
    if reason:
        data["reason"] = reason
    return [DomainEvent(LEFT, data, left_at)]


def evolve(state: Member | None, event: Envelope) -> Member:
    """The member after `event`; `state` is None before the first one."""
    if event.type == JOINED:
        return Member(
            id=event.subject,
            community_id=event.community_id,
            channel=str(event.data["channel"]),
            status=MemberStatus.ACTIVE,
            joined_at=event.time,
            invited_by=event.data.get("invited_by"),
            external_ref=event.data.get("external_ref"),
            version=event.sequence,
        )
    if state is None:
        raise DomainError(f"{event.type} before the member joined")
    if event.type == LEFT:
        return replace(state, status=MemberStatus.LEFT, left_at=event.time, version=event.sequence)
    if event.type == REJOINED:
        return replace(state, status=MemberStatus.ACTIVE, left_at=None, version=event.sequence)
    return replace(state, version=event.sequence)


def replay(events: list[Envelope]) -> Member | None:
    state: Member | None = None
    for event in events:
        state = evolve(state, event)
    return state
