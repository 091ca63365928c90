"""The member aggregate: pure decisions and state, no I/O.

A member joins a community through a channel, may leave and come back, holds roles, updates a
profile and may be erased. Personal data never enters these events (DESIGN §9): it lives in the
service's erasable store (`member_profile`), and `profile_updated` names fields, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gatherly.channels import unknown_channel
from gatherly.contracts import MEMBER_ERASED
from gatherly.envelope import DomainEvent, Envelope, in_the_future

JOINED = "gatherly.member.joined"
REJOINED = "gatherly.member.rejoined"
LEFT = "gatherly.member.left"
ROLE_ASSIGNED = "gatherly.member.role_assigned"
ROLE_REMOVED = "gatherly.member.role_removed"
PROFILE_UPDATED = "gatherly.member.profile_updated"
ERASED = MEMBER_ERASED

# What an erased member's events keep of their data, in the log and in the history: the facts
# the catalogue calls non-personal. An allow-list, so a field a later contract version adds (or
# one this list forgot) goes until someone decides it is not personal. Left out: a leave's
# free-text reason, and `external_ref` (raw in events before m0002, a keyed hash after: either
# one identifies the person on the partner platform, and erasure cleared the list's copy).
NON_PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    JOINED: frozenset({"channel", "invited_by", "joined_at"}),
    REJOINED: frozenset({"channel", "rejoined_at"}),
    LEFT: frozenset({"left_at"}),
    ROLE_ASSIGNED: frozenset({"role"}),
    ROLE_REMOVED: frozenset({"role"}),
    PROFILE_UPDATED: frozenset({"fields"}),  # names of fields, never values
    ERASED: frozenset({"erased_at"}),
}

ROLES = (
    "mentor", "partner", "storyteller", "historian", "hero", "celebrity", "provider", "greeter",
    "guide", "catalyst", "ambassador", "scout",
)


class MemberStatus(StrEnum):
    ACTIVE = "active"
    LEFT = "left"
    ERASED = "erased"


class DomainError(Exception):
    """A command that the member's current state does not allow; `rule` names the broken rule."""

    def __init__(self, message: str, rule: str = "member") -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    community_id: str
    channel: str
    status: MemberStatus
    joined_at: datetime
    invited_by: str | None = None
    external_ref_hash: str | None = None
    left_at: datetime | None = None
    roles: frozenset[str] = frozenset()
    version: int = 0
    # The latest join or rejoin: a leave ends that membership, so it cannot come before it.
    active_since: datetime | None = None


def check_channel(channel: str, custom: frozenset[str] | None) -> None:
    """A built-in channel or one the community added (`custom`, None: any custom slug), by the
    kernel's one check (gatherly.channels)."""
    refusal = unknown_channel(channel, custom)
    if refusal is not None:
        raise DomainError(refusal, rule="channel")


def _check_not_erased(member: Member) -> None:
    if member.status is MemberStatus.ERASED:
        raise DomainError("the member was erased", rule="erased")


def join(
    member_id: str,
    *,
    channel: str,
    joined_at: datetime,
    invited_by: str | None = None,
    external_ref: str | None = None,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    """`external_ref` is the reference as it goes on the log: the handlers pass its keyed hash
    (`personal.ref_hash`), never the raw partner id."""
    check_channel(channel, custom_channels)
    if invited_by == member_id:
        raise DomainError("a member cannot invite themselves", rule="invited_by")
    data: dict[str, object] = {"channel": channel, "joined_at": joined_at.isoformat()}
    if invited_by:
        data["invited_by"] = invited_by
    if external_ref:
        data["external_ref"] = external_ref
    return [DomainEvent(JOINED, data, joined_at)]


def leave(member: Member, *, left_at: datetime, reason: str | None = None) -> list[DomainEvent]:
    _check_not_erased(member)
    if member.status is MemberStatus.LEFT:
        raise DomainError("the member has already left", rule="status")
    if left_at < (member.active_since or member.joined_at):
        came = "rejoining" if member.active_since not in (None, member.joined_at) else "joining"
        raise DomainError(f"a member cannot leave before {came}", rule="left_at")
    data: dict[str, object] = {"left_at": left_at.isoformat()}
    if reason:
        data["reason"] = reason
    return [DomainEvent(LEFT, data, left_at)]


def rejoin(
    member: Member, *, channel: str, rejoined_at: datetime,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    _check_not_erased(member)
    check_channel(channel, custom_channels)
    if member.status is not MemberStatus.LEFT:
        raise DomainError("only a member who left can rejoin", rule="status")
    if member.left_at is not None and rejoined_at < member.left_at:
        raise DomainError("a member cannot rejoin before leaving", rule="rejoined_at")
    data = {"channel": channel, "rejoined_at": rejoined_at.isoformat()}
    return [DomainEvent(REJOINED, data, rejoined_at)]


def check_happened(moment: datetime, now: datetime, *, rule: str) -> None:
    """A join, leave or rejoin is a fact: dated now or earlier, never ahead of the clocks."""
    if in_the_future(moment, now):
        raise DomainError(f"{rule} is in the future", rule=rule)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise DomainError(f"unknown role {role!r}; one of {', '.join(ROLES)}", rule="role")


def assign_role(member: Member, role: str, *, at: datetime) -> list[DomainEvent]:
    """Assigning a role the member already holds records nothing."""
    _check_role(role)
    _check_not_erased(member)
    if role in member.roles:
        return []
    return [DomainEvent(ROLE_ASSIGNED, {"role": role}, at)]


def remove_role(member: Member, role: str, *, at: datetime) -> list[DomainEvent]:
    """Removing a role the member does not hold records nothing."""
    _check_role(role)
    _check_not_erased(member)
    if role not in member.roles:
        return []
    return [DomainEvent(ROLE_REMOVED, {"role": role}, at)]


def update_profile(member: Member, changed: list[str], *, at: datetime) -> list[DomainEvent]:
    """`changed` holds field names only: the values stay in the erasable store."""
    _check_not_erased(member)
    if not changed:
        return []
    return [DomainEvent(PROFILE_UPDATED, {"fields": sorted(changed)}, at)]


def erase(member: Member, *, at: datetime) -> list[DomainEvent]:
    _check_not_erased(member)
    return [DomainEvent(ERASED, {"erased_at": at.isoformat()}, at)]


def evolve(state: Member | None, event: Envelope) -> Member:
    """The member after `event`; `state` is None before the first one."""
    if event.type == JOINED:
        return Member(
            id=event.subject,
            community_id=event.community_id,
            channel=str(event.data["channel"]),
            status=MemberStatus.ACTIVE,
            joined_at=event.time,
            active_since=event.time,
            invited_by=event.data.get("invited_by"),
            external_ref_hash=event.data.get("external_ref"),
            version=event.sequence,
        )
    if state is None:
        raise DomainError(f"{event.type} before the member joined")
    state = replace(state, version=event.sequence)
    if event.type == LEFT:
        return replace(state, status=MemberStatus.LEFT, left_at=event.time)
    if event.type == REJOINED:
        return replace(state, status=MemberStatus.ACTIVE, left_at=None, active_since=event.time)
    if event.type == ROLE_ASSIGNED:
        return replace(state, roles=state.roles | {event.data["role"]})
    if event.type == ROLE_REMOVED:
        return replace(state, roles=state.roles - {event.data["role"]})
    if event.type == ERASED:
        return replace(state, status=MemberStatus.ERASED, external_ref_hash=None)
    return state


def replay(events: list[Envelope]) -> Member | None:
    state: Member | None = None
    for event in events:
        state = evolve(state, event)
    return state
