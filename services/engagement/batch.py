"""Planning a batch of views and reactions: pure, so one request's facts are decided in memory
against the states loaded for the whole batch, then written with one insert per table.

Items are decided in order, each against the state the earlier items left: within one batch,
the same reaction added twice is recorded once, and added then removed is two versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from gatherly.envelope import DomainEvent
from services.engagement import activity
from services.engagement.activity import Publication, Reaction
from services.engagement.domain import DomainError, reaction_id

MAX_ITEMS = 1000


# Facts, outcomes and planned events are made once per item: named tuples, immutable like a
# frozen dataclass at a third of the cost to build (a frozen dataclass sets each field through
# object.__setattr__).
class View(NamedTuple):
    content_id: str
    viewed_at: datetime
    count: int = 1  # type: ignore[assignment]  # shadows tuple.count: a View is not counted
    channel: str | None = None
    member_id: str | None = None


class AddReaction(NamedTuple):
    content_id: str
    member_id: str
    kind: str
    at: datetime
    channel: str | None = None


class RemoveReaction(NamedTuple):
    content_id: str
    member_id: str
    kind: str
    at: datetime


Fact = View | AddReaction | RemoveReaction
# A named tuple's own `__new__` is Python code that calls this: the plan builds its outcomes
# and planned events with it directly, every field given in order (0.15 against 0.3 µs each).
_new = tuple.__new__


class Outcome(NamedTuple):
    """What became of one item: its HTTP status (201 a new fact, 200 a removal or an add that
    was already so, 4xx refused) and whether an event was recorded."""

    status: int
    id: str | None = None
    recorded: bool = False
    error: DomainError | None = None
    reaction: Reaction | None = None


class Planned(NamedTuple):
    """An event decided for a stream at a version; the handler gives it an envelope."""

    stream_id: str
    version: int
    event: DomainEvent


@dataclass(slots=True)
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)
    events: list[Planned] = field(default_factory=list)
    views: dict[str, int] = field(default_factory=dict)  # content id -> views added
    reactions: dict[str, Reaction] = field(default_factory=dict)  # final state of each touched


def reaction_ids(facts: list[Fact]) -> list[str]:
    """The reaction streams a batch touches, so their states load in one query."""
    return sorted({reaction_id(f.content_id, f.member_id, f.kind)
                   for f in facts if not isinstance(f, View)})


def plan(
    facts: list[Fact],
    contents: Mapping[str, Publication],
    reactions: Mapping[str, Reaction],
    now: datetime,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    custom_channels: frozenset[str] | None = None,
) -> Plan:
    """`custom_channels`: the community's, as the gateway names them (gatherly.channels); a fact
    naming another channel is refused alone, like any refused item."""
    result = Plan()
    for fact in facts:
        try:
            outcome = _decide(result, fact, contents, reactions, now, new_id, custom_channels)
        except DomainError as error:
            outcome = Outcome(error.status, error=error)
        result.outcomes.append(outcome)
    return result


def _decide(
    result: Plan, fact: Fact, contents: Mapping[str, Publication],
    reactions: Mapping[str, Reaction], now: datetime, new_id: Callable[[], str],
    custom_channels: frozenset[str] | None,
) -> Outcome:
    if isinstance(fact, RemoveReaction):
        return _remove(result, fact, reactions, now)
    content = activity.require_publication(contents.get(fact.content_id), fact.content_id)
    if isinstance(fact, View):
        event = activity.record_view(content, count=fact.count, viewed_at=fact.viewed_at, now=now,
                                     channel=fact.channel, member_id=fact.member_id,
                                     custom_channels=custom_channels)
        view_id = new_id()
        result.events.append(_new(Planned, (view_id, 1, event)))
        result.views[content.id] = result.views.get(content.id, 0) + fact.count
        return _new(Outcome, (201, view_id, True, None, None))
    stream = reaction_id(fact.content_id, fact.member_id, fact.kind)
    current = result.reactions.get(stream) or reactions.get(stream)
    events = activity.add_reaction(current, content, member_id=fact.member_id, kind=fact.kind,
                                   at=fact.at, now=now, channel=fact.channel,
                                   custom_channels=custom_channels)
    if not events:
        return Outcome(200, stream, reaction=current)
    # Positional (fields: id, content_id, member_id, kind, channel, active, at, version): a
    # frozen dataclass built from keywords cost 1.65 against 1.16 µs.
    added = Reaction(stream, content.id, fact.member_id, fact.kind,
                     str(events[0].data["channel"]), True, fact.at,
                     (current.version if current else 0) + 1)
    return _record(result, added, events[0], status=201)


def _remove(
    result: Plan, fact: RemoveReaction, reactions: Mapping[str, Reaction], now: datetime
) -> Outcome:
    stream = reaction_id(fact.content_id, fact.member_id, fact.kind)
    current = result.reactions.get(stream) or reactions.get(stream)
    event = activity.remove_reaction(current, at=fact.at, now=now)
    assert current is not None  # remove_reaction refuses a missing reaction
    removed = replace(current, active=False, at=fact.at, version=current.version + 1)
    return _record(result, removed, event, status=200)


def _record(result: Plan, reaction: Reaction, event: DomainEvent, *, status: int) -> Outcome:
    result.events.append(_new(Planned, (reaction.id, reaction.version, event)))
    result.reactions[reaction.id] = reaction
    return _new(Outcome, (status, reaction.id, True, None, reaction))
