"""Planning a batch of views and reactions, in memory: each item decided against the state the
earlier ones left, each answered on its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import count

from services.engagement.activity import Publication, Reaction
from services.engagement.batch import (
    AddReaction,
    Outcome,
    RemoveReaction,
    View,
    plan,
    reaction_ids,
)
from services.engagement.domain import reaction_id

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
ITEM = Publication(str(uuid.uuid4()), "telegram", T0)
UNKNOWN = str(uuid.uuid4())
MEMBER = str(uuid.uuid4())
CONTENTS = {ITEM.id: ITEM}


def ids() -> object:
    numbers = count(1)
    return lambda: f"view-{next(numbers)}"


def test_views_add_up_per_item_and_each_is_its_own_stream() -> None:
    result = plan([View(ITEM.id, T0), View(ITEM.id, T0, count=5, member_id=MEMBER)],
                  CONTENTS, {}, NOW, new_id=ids())  # type: ignore[arg-type]
    assert result.outcomes == [Outcome(201, "view-1", True), Outcome(201, "view-2", True)]
    assert [(p.stream_id, p.version) for p in result.events] == [("view-1", 1), ("view-2", 1)]
    assert result.views == {ITEM.id: 6}


def test_an_unknown_item_refuses_only_its_own_fact() -> None:
    result = plan([View(UNKNOWN, T0), View(ITEM.id, T0)], CONTENTS, {}, NOW)
    first, second = result.outcomes
    assert first.status == 422 and first.error is not None and first.error.field == "content_id"
    assert second.status == 201 and len(result.events) == 1


def test_the_same_reaction_twice_in_one_batch_is_recorded_once() -> None:
    add = AddReaction(ITEM.id, MEMBER, "like", T0)
    result = plan([add, add], CONTENTS, {}, NOW)
    assert [(o.status, o.recorded) for o in result.outcomes] == [(201, True), (200, False)]
    assert len(result.events) == 1
    added = result.reactions[reaction_id(ITEM.id, MEMBER, "like")]
    assert result.outcomes[0] == Outcome(201, added.id, True, None, added)
    assert result.outcomes[1] == Outcome(200, added.id, reaction=added)
    assert (added.content_id, added.member_id, added.kind, added.channel, added.active,
            added.at, added.version) == (ITEM.id, MEMBER, "like", "telegram", True, T0, 1)


def test_added_removed_added_are_three_versions_of_one_stream() -> None:
    add = AddReaction(ITEM.id, MEMBER, "love", T0)
    remove = RemoveReaction(ITEM.id, MEMBER, "love", T0 + timedelta(minutes=1))
    again = AddReaction(ITEM.id, MEMBER, "love", T0 + timedelta(minutes=2))
    result = plan([add, remove, again], CONTENTS, {}, NOW)
    stream = reaction_id(ITEM.id, MEMBER, "love")
    assert [(p.stream_id, p.version) for p in result.events] == [
        (stream, 1), (stream, 2), (stream, 3)]
    assert result.reactions[stream].active and result.reactions[stream].version == 3
    assert reaction_ids([add, remove, again]) == [stream]


def test_a_loaded_reaction_continues_its_versions_and_a_missing_one_cannot_be_removed() -> None:
    stream = reaction_id(ITEM.id, MEMBER, "like")
    known = {stream: Reaction(stream, ITEM.id, MEMBER, "like", "telegram", True, T0, 4)}
    other = RemoveReaction(ITEM.id, MEMBER, "share", NOW)
    result = plan([RemoveReaction(ITEM.id, MEMBER, "like", NOW), other], CONTENTS, known, NOW)
    assert [o.status for o in result.outcomes] == [200, 404]
    assert [(p.stream_id, p.version) for p in result.events] == [(stream, 5)]
    assert not result.reactions[stream].active
