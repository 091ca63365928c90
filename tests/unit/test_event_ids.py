"""Event and member ids made in bulk are random version-4 UUIDs, as `uuid.uuid4()` makes."""

from __future__ import annotations

import uuid

from gatherly.envelope import new_event_ids


def test_bulk_ids_are_distinct_version_4_uuids_in_canonical_text() -> None:
    ids = new_event_ids(5000)
    assert len(set(ids)) == 5000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert new_event_ids(0) == []


def test_ids_are_the_same_text_however_many_are_made() -> None:
    """Fewer than 32 ids are cut one by one, more are laid out all at once: both ways give
    canonical version-4 text, one id per 16 bytes read, in order."""
    for count in (1, 31, 32, 33, 1000):
        ids = new_event_ids(count)
        assert len(ids) == len(set(ids)) == count
        assert all(str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4
                   for text in ids)
