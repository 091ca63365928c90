"""Reading a batch body: every item valid goes through pydantic-core in one pass; one bad item
sends the whole body item by item. Both ways must read the same items the same way."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

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


def _exactly(facts: list[object]) -> list[object]:
    """Facts with each moment as its value, offset and ISO text: equal datetimes may differ in
    offset, and the events carry the text."""
    return [tuple((m, m.utcoffset(), m.isoformat()) if isinstance(m, datetime) else m for m in f)
            if isinstance(f, tuple) else f for f in facts]


@pytest.mark.parametrize("moment", [
    "2026-03-01T09:00:00Z", "2026-03-01T09:00:00+00:00", "2026-03-01T09:00:00-00:00",
    "2026-03-01T12:00:00+03:00", "2026-03-01T14:45:00+05:45", "2026-02-28T21:00:00-12:00",
    "2026-03-01T09:00:00.5Z", "2026-03-01T09:00:00.123456+01:00", "2026-03-01T09:00:00.000000Z",
    "2024-02-29T09:00:00Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
    "2026-03-01t09:00:00Z", "2026-03-01 09:00:00Z", "2026-03-01T09:00:00", "2026-03-01T09:00Z",
    "2026-03-01T09:00:00.1234567Z", "2026-03-01T09:00:00+0300", "2026-03-01T09:00:00+05:60",
    "2026-03-01T09:00:00+24:00", "2026-02-29T09:00:00Z", "2026-03-01T24:00:00Z",
    "2026-03-01T23:59:60Z", "1772355600", "0000-01-01T00:00:00Z",
])
def test_a_body_of_rfc_3339_moments_reads_as_the_models_would(moment: str) -> None:
    """The first pass reads moments with `datetime.fromisoformat` when they are written as RFC
    3339: whatever the spelling, a body must read as it does item by item, to the offset and
    the ISO text, or be refused the same way."""
    items = [{"op": "view", "content_id": CONTENT, "viewed_at": moment},
             {"op": "add_reaction", "content_id": CONTENT, "member_id": MEMBER, "kind": "like",
              "at": moment},
             {"op": "remove_reaction", "content_id": CONTENT, "member_id": MEMBER,
              "kind": "like", "at": moment}]
    item_by_item = parse_batch(body([*items, {"op": "teleport"}]), 10)[:-1]
    assert _exactly(parse_batch(body(items), 10)) == _exactly(item_by_item)


def test_a_moment_at_utc_reads_with_the_utc_singleton() -> None:
    """What the first pass is for: our clock and the stored publication times are in
    `timezone.utc`, and comparing moments that share their tzinfo object skips `utcoffset`."""
    items = [{"op": "view", "content_id": CONTENT, "viewed_at": "2026-03-01T09:00:00Z"},
             *ITEMS[2:]]
    view, added, removed = parse_batch(body(items), 10)
    assert isinstance(view, View) and view.viewed_at.tzinfo is UTC
    assert isinstance(added, AddReaction) and added.at.tzinfo is UTC
    assert isinstance(removed, RemoveReaction) and removed.at.tzinfo is UTC
