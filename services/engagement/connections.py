"""Introductions and thanks: one-off facts between members, each its own aggregate. Pure."""

from __future__ import annotations

from datetime import datetime

from gatherly.envelope import DomainEvent
from services.engagement.domain import DomainError, require_not_future

INTRODUCED = "gatherly.introduction.made"
THANKED = "gatherly.thanks.sent"
THANKS_ABOUT = ("event", "content")


def introduce(
    *, member_a: str, member_b: str, by_member: str, at: datetime, now: datetime
) -> list[DomainEvent]:
    """The catalyst connects two *other* members: nobody is introduced to themselves."""
    if member_a == member_b:
        raise DomainError("a member cannot be introduced to themselves", field="member_b")
    if by_member in (member_a, member_b):
        raise DomainError("the catalyst introduces two other members", field="by_member")
    require_not_future(at, now, field="at")
    data = {"member_a": member_a, "member_b": member_b, "by_member": by_member,
            "at": at.isoformat()}
    return [DomainEvent(INTRODUCED, data, at)]


def thank(
    *, to_member: str, at: datetime, now: datetime, by_member: str | None = None,
    reason: str | None = None, about_kind: str | None = None, about_id: str | None = None,
) -> list[DomainEvent]:
    if by_member == to_member:
        raise DomainError("a member cannot thank themselves", field="by_member")
    if (about_kind is None) != (about_id is None):
        raise DomainError("thanks for something names both about_kind and about_id",
                          field="about_id" if about_kind else "about_kind")
    if about_kind is not None and about_kind not in THANKS_ABOUT:
        raise DomainError(f"thanks cannot be for {about_kind!r}", field="about_kind")
    if reason is not None and not reason.strip():
        raise DomainError("a reason, when given, says something", field="reason")
    require_not_future(at, now, field="at")
    data: dict[str, object] = {"to_member": to_member, "at": at.isoformat()}
    optional = {"by_member": by_member, "reason": reason, "about_kind": about_kind,
                "about_id": about_id}
    data.update({name: value for name, value in optional.items() if value is not None})
    return [DomainEvent(THANKED, data, at)]
