"""`Envelope.to_json`, written field by field, is byte for byte the compact `json.dumps` of
`to_cloudevent()`: what the relay published before, and what consumers and the stream's
duplicate detection have seen since."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gatherly.envelope import Envelope

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
AWKWARD = ["", "plain", 'quote " and backslash \\', "slash / tab \t newline \n cr \r",
           "\x00\x01\x1f\x7f", "é ü ß", "Москва", "東京", "emoji 😀 🇫🇷", "\u2028\u2029",
           "\ufeff bom", "\ud7ff\ue000\uffff", "</script>"]


def reference(envelope: Envelope) -> bytes:
    """How `to_json` was written before: the one definition of the bytes."""
    return json.dumps(envelope.to_cloudevent(), separators=(",", ":")).encode()


def envelope(**changes: object) -> Envelope:
    fields: dict[str, object] = dict(
        id="7c1d0a57-2a8d-4c71-9a43-27b1c1f7f0de", source="/gatherly/members",
        type="gatherly.member.joined", subject="m1", community_id="c1", sequence=3, time=T0,
        data={"channel": "vk"}, traceparent=TRACEPARENT)
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", AWKWARD)
@pytest.mark.parametrize("field", ["id", "source", "subject", "community_id", "traceparent"])
def test_every_string_attribute_is_escaped_as_json_dumps_escapes_it(field: str, text: str) -> None:
    event = envelope(**{field: text})
    assert event.to_json() == reference(event)


@pytest.mark.parametrize("text", AWKWARD)
def test_data_keys_and_values_are_written_as_json_dumps_writes_them(text: str) -> None:
    event = envelope(data={text: text, "nested": {"list": [text, 1, 2.5, None, True, False]},
                           "z": -0.0, "a": 10**30, "f": 1e-7, "g": 0.1 + 0.2, "e": {}, "l": []})
    assert event.to_json() == reference(event)


@pytest.mark.parametrize("moment", [
    T0, T0.replace(microsecond=123456), T0.astimezone(timezone(timedelta(hours=5, minutes=30))),
    datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 5, 1, 9, 30),  # naive, as a caller might build one
])
def test_times_are_written_as_isoformat(moment: datetime) -> None:
    event = envelope(time=moment)
    assert event.to_json() == reference(event)


@pytest.mark.parametrize("traceparent", [None, "", TRACEPARENT])
@pytest.mark.parametrize("sequence", [0, 1, 2**40, -1])
def test_traceparent_only_when_set_and_the_sequence_as_text(
    traceparent: str | None, sequence: int,
) -> None:
    event = envelope(traceparent=traceparent, sequence=sequence)
    assert event.to_json() == reference(event)


def test_random_envelopes_of_random_text() -> None:
    rng = random.Random(5)
    alphabet = [chr(c) for c in (*range(0, 0x80), *range(0x80, 0x800, 7),
                                 *range(0x800, 0xD800, 331), *range(0xE000, 0x110000, 4099))]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    for _ in range(500):
        event = envelope(id=text(), subject=text(), community_id=text(), type=text(),
                         source=text(), traceparent=rng.choice([None, text()]),
                         data={text(): rng.choice([text(), rng.random(), rng.randint(-9, 9)])
                               for _ in range(rng.randint(0, 4))})
        assert event.to_json() == reference(event)
