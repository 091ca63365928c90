"""The envelope is CloudEvents 1.0 structured JSON, and survives the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from gatherly.envelope import DomainEvent, Envelope, MalformedEnvelope, from_json

EVENT = Envelope(
    id="7c1d0a57-2a8d-4c71-9a43-27b1c1f7f0de", source="/gatherly/members",
    type="gatherly.member.joined", subject="m1", community_id="c1", sequence=3,
    time=datetime(2026, 5, 1, 9, 30, tzinfo=UTC), data={"channel": "vk"},
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


def test_round_trip_and_subject() -> None:
    assert from_json(EVENT.to_json()) == EVENT
    assert EVENT.nats_subject == "gatherly.c1.member.joined"


def test_the_cloudevents_sdk_reads_it() -> None:
    event = JSONFormat().read(CloudEvent, EVENT.to_json())
    assert event.get_id() == EVENT.id and event.get_time() == EVENT.time
    assert event.get_extension("traceparent") == EVENT.traceparent
    assert event.get_extension("communityid") == "c1"
    assert event.get_datacontenttype() == "application/json"


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{}", b'{"specversion": "0.3"}', b'{"specversion": "1.0", "id": 1}',
     b'["specversion", "1.0"]', b'"1.0"', b"\xff\xfe", b""],
)
def test_anything_else_is_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        from_json(payload)


@pytest.mark.parametrize("name", ["member.joined", "gatherly.Member.joined", "gatherly.member"])
def test_type_names_follow_the_catalogue_pattern(name: str) -> None:
    with pytest.raises(ValueError):
        DomainEvent(name, {}, EVENT.time)
