"""A platform's anonymous reaction counts: one snapshot per (content, counter, kind), the latest
`as_of` replacing earlier ones, with the same rules as view counters. Pure."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gatherly.contracts import validate
from services.engagement import activity
from services.engagement.activity import Publication, ReactionCount
from services.engagement.domain import DomainError, Stale, reaction_counter_id

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
ITEM = Publication(str(uuid.uuid4()), "telegram", T0)


def known(total: int, as_of: datetime, kind: str = "like") -> ReactionCount:
    stream = reaction_counter_id(ITEM.id, "telegram", kind)
    return ReactionCount(stream, ITEM.id, "telegram", kind, total, as_of, 1)


def test_a_reaction_count_is_a_snapshot_with_no_member_matching_its_contract() -> None:
    [event] = activity.count_reactions(None, ITEM, counter="telegram", kind="like", total=5,
                                       as_of=T0, now=NOW)
    assert event.type == "gatherly.content.reactions_counted" and event.time == T0
    assert event.data == {"content_id": ITEM.id, "channel": "telegram", "counter": "telegram",
                          "kind": "like", "total": 5, "as_of": T0.isoformat()}
    validate(event.type, event.data)


def test_each_counter_and_kind_of_an_item_is_its_own_stream() -> None:
    streams = {reaction_counter_id(ITEM.id, c, k)
               for c in ("telegram", "vk") for k in ("like", "love")}
    assert len(streams) == 4
    assert reaction_counter_id(ITEM.id, "telegram", "like") == str(
        uuid.uuid5(uuid.UUID(ITEM.id), "telegram:like"))


def test_a_later_reaction_count_replaces_an_earlier_one_and_a_repeat_records_nothing() -> None:
    assert activity.count_reactions(known(5, T0), ITEM, counter="telegram", kind="like",
                                    total=5, as_of=T0, now=NOW) == []
    [later] = activity.count_reactions(known(5, T0), ITEM, counter="telegram", kind="like",
                                       total=0, as_of=T0 + timedelta(hours=1), now=NOW)
    assert later.data["total"] == 0


@pytest.mark.parametrize(("total", "hours"), [(4, 1), (6, 2)])
def test_an_older_or_conflicting_reaction_count_is_refused(total: int, hours: int) -> None:
    as_of = T0 + timedelta(hours=hours)
    with pytest.raises(Stale) as refused:
        activity.count_reactions(known(5, T0 + timedelta(hours=2)), ITEM, counter="telegram",
                                 kind="like", total=total, as_of=as_of, now=NOW)
    assert refused.value.status == 409 and refused.value.field == "as_of"


@pytest.mark.parametrize(("change", "field"), [
    ({"total": -1}, "total"), ({"kind": "Not A Kind"}, "kind"), ({"counter": "?"}, "counter"),
    ({"as_of": T0 - timedelta(days=1)}, "as_of"), ({"as_of": NOW + timedelta(hours=1)}, "as_of"),
])
def test_a_reaction_count_names_what_is_wrong(change: dict[str, object], field: str) -> None:
    command: dict[str, object] = {"counter": "telegram", "kind": "like", "total": 1, "as_of": T0,
                                  **change}
    with pytest.raises(DomainError) as refused:
        activity.count_reactions(None, ITEM, now=NOW, **command)  # type: ignore[arg-type]
    assert refused.value.field == field
