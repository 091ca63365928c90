"""Views, channel counter snapshots and reactions: the high-volume facts. Pure decisions.

Each fact names its content item, which must be one of the community's (the caller looks it up;
these functions receive what it found). A fact cannot predate the item's publication.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gatherly.envelope import DomainEvent
from services.engagement.domain import (
    DomainError,
    NotFound,
    Stale,
    fact_channel,
    require_counter,
    require_not_before,
    require_not_future,
    require_reaction_kind,
)

VIEWED = "gatherly.content.viewed"
VIEWS_COUNTED = "gatherly.content.views_counted"
REACTIONS_COUNTED = "gatherly.content.reactions_counted"
REACTION_ADDED = "gatherly.reaction.added"
REACTION_REMOVED = "gatherly.reaction.removed"


@dataclass(frozen=True, slots=True)
class Publication:
    """What the engagement facts need to know about a content item."""

    id: str
    channel: str
    published_at: datetime


@dataclass(frozen=True, slots=True)
class Reaction:
    """One member's reaction of one kind on one item; its stream alternates added/removed."""

    id: str
    content_id: str
    member_id: str
    kind: str
    channel: str
    active: bool
    at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    id: str
    content_id: str
    counter: str
    total: int
    as_of: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ReactionCount:
    """A platform's anonymous count of one reaction kind on an item (no member behind it)."""

    id: str
    content_id: str
    counter: str
    kind: str
    total: int
    as_of: datetime
    version: int


def require_publication(content: Publication | None, content_id: str) -> Publication:
    if content is None:
        raise DomainError(f"no content item {content_id} in this community", field="content_id")
    return content


def record_view(
    content: Publication, *, count: int, viewed_at: datetime, now: datetime,
    channel: str | None = None, member_id: str | None = None,
    custom_channels: frozenset[str] | None = None,
) -> DomainEvent:
    if count < 1:
        raise DomainError("count must be at least 1", field="count")
    _dated(content, viewed_at, now, field="viewed_at")
    data: dict[str, object] = {
        "content_id": content.id,
        "channel": fact_channel(channel, content.channel, custom_channels),
        "count": count,
        "viewed_at": viewed_at.isoformat(),
    }
    if member_id:
        data["member_id"] = member_id
    return DomainEvent(VIEWED, data, viewed_at)


def count_views(
    snapshot: CounterSnapshot | None, content: Publication, *, counter: str, total: int,
    as_of: datetime, now: datetime, channel: str | None = None,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    """A counter's total as of a moment. The same snapshot again records nothing; an older one,
    or another total for the same moment, is refused: re-importing must never change the count."""
    if not _newer_snapshot(snapshot, content, counter=counter, total=total, as_of=as_of,
                           now=now, what=f"the {counter} counter"):
        return []
    data = {
        "content_id": content.id,
        "channel": fact_channel(channel, content.channel, custom_channels),
        "counter": counter, "total": total, "as_of": as_of.isoformat(),
    }
    return [DomainEvent(VIEWS_COUNTED, data, as_of)]


def count_reactions(
    snapshot: ReactionCount | None, content: Publication, *, counter: str, kind: str,
    total: int, as_of: datetime, now: datetime, channel: str | None = None,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    """A platform's count of one reaction kind as of a moment: the same rules as `count_views`
    (the latest `as_of` replaces earlier ones; an older snapshot is refused, the same again
    records nothing), per (content, counter, kind)."""
    require_reaction_kind(kind)
    if not _newer_snapshot(snapshot, content, counter=counter, total=total, as_of=as_of,
                           now=now, what=f"the {counter} count of {kind!r} reactions"):
        return []
    data = {
        "content_id": content.id,
        "channel": fact_channel(channel, content.channel, custom_channels),
        "counter": counter, "kind": kind, "total": total, "as_of": as_of.isoformat(),
    }
    return [DomainEvent(REACTIONS_COUNTED, data, as_of)]


def _newer_snapshot(
    snapshot: CounterSnapshot | ReactionCount | None, content: Publication, *, counter: str,
    total: int, as_of: datetime, now: datetime, what: str,
) -> bool:
    """True when this snapshot is to be recorded; False when it is the current one again."""
    require_counter(counter)
    if total < 0:
        raise DomainError("total cannot be negative", field="total")
    _dated(content, as_of, now, field="as_of")
    if snapshot is None:
        return True
    if snapshot.as_of == as_of and snapshot.total == total:
        return False
    if as_of <= snapshot.as_of:
        raise Stale(f"{what} already has a snapshot as of {snapshot.as_of.isoformat()}",
                    field="as_of")
    return True


def add_reaction(
    reaction: Reaction | None, content: Publication, *, member_id: str, kind: str,
    at: datetime, now: datetime, channel: str | None = None,
    custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    """A member's second identical reaction changes nothing (whatever channel it names)."""
    require_reaction_kind(kind)
    _dated(content, at, now, field="at")
    if reaction is not None and reaction.active:
        return []
    data = {
        "content_id": content.id, "member_id": member_id, "kind": kind,
        "channel": fact_channel(channel, content.channel, custom_channels),
        "at": at.isoformat(),
    }
    return [DomainEvent(REACTION_ADDED, data, at)]


def remove_reaction(reaction: Reaction | None, *, at: datetime, now: datetime) -> DomainEvent:
    if reaction is None or not reaction.active:
        raise NotFound("there is no such reaction to remove")
    require_not_future(at, now, field="at")
    require_not_before(at, reaction.at, field="at", what="the reaction was added")
    data = {
        "content_id": reaction.content_id, "member_id": reaction.member_id,
        "kind": reaction.kind, "channel": reaction.channel, "at": at.isoformat(),
    }
    return DomainEvent(REACTION_REMOVED, data, at)


def _dated(content: Publication, moment: datetime, now: datetime, *, field: str) -> None:
    require_not_future(moment, now, field=field)
    require_not_before(moment, content.published_at, field=field, what="the publication")
