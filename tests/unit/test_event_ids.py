"""Event and member ids made in bulk are random version-4 UUIDs, as `uuid.uuid4()` makes."""

from __future__ import annotations

import uuid

from gatherly.eventstore import new_event_ids


def test_bulk_ids_are_distinct_version_4_uuids_in_canonical_text() -> None:
    ids = new_event_ids(5000)
    assert len(set(ids)) == 5000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert new_event_ids(0) == []
