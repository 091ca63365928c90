"""Our own command shapes, as partners send them and as the platform mappers produce them, and
how a delivery splits into one part per owning service. Pure.

Every command is a JSON object with an `op`. A member may be named by our id (`member_id`) or,
in events' and engagement's commands, by the platform's id (`member_ref`: channel +
external_ref): the members service is asked first, creates the members it has never seen (a
join with that reference) and answers their ids, which then replace the references.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from gatherly.web import Count, Moment

MAX_COMMANDS = 1000
Slug = Annotated[str, Field(min_length=2, max_length=32)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ref(Strict):
    """Something as a partner platform names it: its channel and its own id there."""

    channel: Slug
    external_ref: str = Field(min_length=1, max_length=200)


class ByMember(Strict):
    member_id: uuid.UUID | None = None
    member_ref: Ref | None = None

    @model_validator(mode="after")
    def _one_member(self) -> ByMember:
        if (self.member_id is None) == (self.member_ref is None):
            raise ValueError("give exactly one of member_id or member_ref")
        return self


class OnContent(Strict):
    content_id: uuid.UUID | None = None
    content_ref: Ref | None = None

    @model_validator(mode="after")
    def _one_content(self) -> OnContent:
        if (self.content_id is None) == (self.content_ref is None):
            raise ValueError("give exactly one of content_id or content_ref")
        return self


class Join(Strict):
    op: Literal["join"]
    channel: Slug
    external_ref: str | None = Field(default=None, min_length=1, max_length=200)
    invited_by: uuid.UUID | None = None
    joined_at: Moment | None = None
    display_name: str | None = Field(default=None, max_length=200)


class Leave(ByMember):
    op: Literal["leave"]
    left_at: Moment | None = None
    reason: str | None = Field(default=None, max_length=500)


class Register(ByMember):
    op: Literal["register"]
    event_id: uuid.UUID
    channel: Slug
    at: Moment | None = None


class CheckIn(ByMember):
    op: Literal["check_in"]
    event_id: uuid.UUID
    walk_in: bool = False
    channel: Slug | None = None
    at: Moment | None = None


class PublishContent(Strict):
    op: Literal["publish_content"]
    content_ref: Ref
    kind: str = Field(default="post", min_length=2, max_length=32)
    published_at: Moment | None = None
    title: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)


class View(OnContent):
    op: Literal["view"]
    member_id: uuid.UUID | None = None
    member_ref: Ref | None = None
    count: int = Field(default=1, ge=1, le=1_000_000)
    channel: Slug | None = None
    viewed_at: Moment | None = None


class React(OnContent, ByMember):
    op: Literal["add_reaction", "remove_reaction"]
    kind: Slug
    channel: Slug | None = None
    at: Moment | None = None


class CountReactions(OnContent):
    """A platform's anonymous count of one reaction kind (no member), as of a moment."""

    op: Literal["count_reactions"]
    counter: Slug
    kind: Slug
    total: Count
    as_of: Moment
    channel: Slug | None = None


class Feedback(ByMember):
    op: Literal["feedback"]
    about_kind: Literal["event", "content", "community"]
    about_id: uuid.UUID | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    channel: Slug
    text: str = Field(min_length=1, max_length=10_000)
    submitted_at: Moment | None = None


Command = Annotated[
    Join | Leave | Register | CheckIn | PublishContent | View | React | CountReactions
    | Feedback,
    Field(discriminator="op"),
]
COMMANDS: TypeAdapter[list[Command]] = TypeAdapter(
    Annotated[list[Command], Field(min_length=1, max_length=MAX_COMMANDS)]
)

OWNER = {
    "join": "members", "leave": "members",
    "register": "events", "check_in": "events",
    "publish_content": "engagement", "view": "engagement", "add_reaction": "engagement",
    "remove_reaction": "engagement", "count_reactions": "engagement", "feedback": "engagement",
}
# The members part goes first: it resolves the references the other parts name.
ORDER = ("members", "events", "engagement")
MOMENTS = ("at", "joined_at", "left_at", "viewed_at", "submitted_at")


def as_wire(commands: list[Any]) -> list[dict[str, Any]]:
    """Validated commands back to JSON objects, without the fields left unset."""
    return [c.model_dump(mode="json", exclude_none=True) for c in commands]


def split(commands: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """One list per owning service, each in delivery order; a member named by reference in
    another service's command gets an `ensure` in the members part (once per reference)."""
    parts: dict[str, list[dict[str, Any]]] = {}
    ensured: set[str] = set()
    for command in commands:
        owner = OWNER[command["op"]]
        parts.setdefault(owner, []).append(command)
        ref = command.get("member_ref")
        if owner == "members" or ref is None or ref_key(ref) in ensured:
            continue
        ensured.add(ref_key(ref))
        ensure: dict[str, Any] = {"op": "ensure", "member_ref": ref}
        if (moment := _moment(command)) is not None:
            ensure["at"] = moment
        parts.setdefault("members", []).append(ensure)
    return {owner: parts[owner] for owner in ORDER if owner in parts}


def resolve(commands: list[dict[str, Any]], members: Mapping[str, str]) -> list[dict[str, Any]]:
    """The commands with each `member_ref` replaced by the member id the members part answered."""
    resolved = []
    for command in commands:
        ref = command.get("member_ref")
        if ref is None:
            resolved.append(command)
            continue
        named = {k: v for k, v in command.items() if k != "member_ref"}
        named["member_id"] = members[ref_key(ref)]
        resolved.append(named)
    return resolved


def ref_key(ref: Mapping[str, Any]) -> str:
    """How the members service keys a reference in its answer."""
    return f"{ref['channel']}:{ref['external_ref']}"


def _moment(command: Mapping[str, Any]) -> str | None:
    return next((command[name] for name in MOMENTS if command.get(name)), None)
