"""Reading a batch body: every item valid goes through pydantic-core in one pass; one bad item
sends the whole body item by item. Both ways must read the same items the same way."""

from __future__ import annotations

import json
import uuid

import pytest

from gatherly.web import Problem
from services.engagement.batch import AddReaction, RemoveReaction, View
from services.engagement.batch_http import parse_batch

CONTENT = str(uuid.uuid4())
MEMBER = str(uuid.uuid4())
ITEMS = [
    {"op": "view", "content_id": CONTENT.upper(), "viewed_at": "2026-03-01T12:00:00+03:00"},
    {"op": "view", "content_id": CONTENT, "member_id": MEMBER.replace("-", ""), "count": "4",
     "channel": "vk", "viewed_at": "2026-03-01T09:00:00Z"},
    {"op": "add_reaction", "content_id": CONTENT, "member_id": MEMBER, "kind": "like",
     "at": "2026-03-01T09:00:00Z"},
    {"op": "remove_reaction", "content_id": CONTENT, "member_id": MEMBER, "kind": "like",
     "at": "2026-03-01T09:01:00Z"},
]


def body(items: list[object]) -> bytes:
    return json.dumps({"items": items}).encode()


def test_valid_items_read_the_same_in_one_pass_as_item_by_item() -> None:
    whole = parse_batch(body(ITEMS), 10)
    with_a_bad_one = parse_batch(body([*ITEMS, {"op": "teleport"}]), 10)
    assert whole == with_a_bad_one[:-1]
    assert [type(f) for f in whole] == [View, View, AddReaction, RemoveReaction]
    first, second = whole[0], whole[1]
    assert isinstance(first, View) and isinstance(second, View)
    assert first.content_id == CONTENT and first.viewed_at.utcoffset() is not None
    assert (second.member_id, second.count, second.channel) == (MEMBER, 4, "vk")
    assert isinstance(with_a_bad_one[-1], dict) and with_a_bad_one[-1]["status"] == 422


@pytest.mark.parametrize(("items", "says"), [([], "at least one"), (ITEMS * 3, "at most 10")])
def test_the_size_of_a_valid_envelope_is_checked(items: list[object], says: str) -> None:
    with pytest.raises(Problem) as refused:
        parse_batch(body(items), 10)
    assert refused.value.status == 422 and says in str(refused.value.detail)


@pytest.mark.parametrize("spelling", [
    CONTENT, CONTENT.upper(), CONTENT.replace("-", ""), "{" + CONTENT + "}", "urn:uuid:" + CONTENT,
    "00000000-0000-0000-0000-000000000000", CONTENT[:-1] + "g", CONTENT + "0", "not an id",
])
def test_a_body_of_canonical_ids_reads_as_the_models_would(spelling: str) -> None:
    """The first pass reads ids as canonical text, not UUIDs: whatever the spelling, a body
    must read as it does item by item, through the declared models (a bad item forces that)."""
    at = "2026-03-01T09:00:00Z"
    items = [{"op": "view", "content_id": spelling, "member_id": spelling, "viewed_at": at},
             {"op": "add_reaction", "content_id": spelling, "member_id": spelling,
              "kind": "like", "at": at},
             {"op": "remove_reaction", "content_id": CONTENT, "member_id": spelling,
              "kind": "like", "at": at}]
    item_by_item = parse_batch(body([*items, {"op": "teleport"}]), 10)[:-1]
    assert parse_batch(body(items), 10) == item_by_item
