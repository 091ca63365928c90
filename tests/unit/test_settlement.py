"""Which messages a projection applies, skips or defers, and how far its checkpoint moves."""

from __future__ import annotations

from datetime import UTC, datetime

from gatherly.bus import Delivery
from gatherly.envelope import Envelope
from gatherly.settlement import BatchOutcome, Watermark, order_batch

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def delivery(stream_sequence: int) -> Delivery:
    return Delivery(payload=b"", headers={}, stream_sequence=stream_sequence, delivered_count=1,
                    _msg=None)  # type: ignore[arg-type]


def event(stream_id: str, version: int) -> Envelope:
    return Envelope(id=f"{stream_id}-{version}", source="/test", type="gatherly.member.joined",
                    subject=stream_id, community_id="c1", sequence=version, time=T0, data={})


def decide(
    batch: list[tuple[int, str, int]], applied: dict[str, int]
) -> tuple[list[str], BatchOutcome]:
    deliveries = [delivery(seq) for seq, _, _ in batch]
    envelopes = {seq: event(stream, version) for seq, stream, version in batch}
    outcome = BatchOutcome()
    return [e.id for e in order_batch(deliveries, envelopes, applied, outcome)], outcome


def test_each_aggregate_gets_its_next_versions_in_order_even_if_delivered_backwards() -> None:
    applied, outcome = decide([(7, "m1", 2), (5, "m1", 1), (6, "m2", 1)], {})
    assert applied == ["m1-1", "m1-2", "m2-1"]
    assert outcome.duplicates == outcome.deferred == []


def test_a_redelivered_version_is_a_duplicate_and_a_version_after_a_gap_waits() -> None:
    applied, outcome = decide([(3, "m1", 2), (4, "m1", 4)], {"m1": 2})
    assert applied == []
    assert [d.stream_sequence for d in outcome.duplicates] == [3]
    assert [d.stream_sequence for d in outcome.deferred] == [4]
    assert outcome.settled == {3}


def test_the_watermark_never_passes_an_unsettled_sequence() -> None:
    mark = Watermark(10)
    mark = mark.advanced({12, 13}, stored=10)  # 11 not seen yet (in flight elsewhere)
    assert (mark.value, mark.settled_above) == (10, {12, 13})
    mark = mark.advanced({11}, stored=10)
    assert (mark.value, mark.settled_above) == (13, set())


def test_the_watermark_starts_from_what_the_database_holds() -> None:
    assert Watermark(0).advanced({6}, stored=5).value == 6


def test_a_partitions_ack_floor_carries_its_watermark_over_other_partitions_sequences() -> None:
    mark = Watermark(0).advanced({2, 5}, stored=0)  # 1, 3 and 4 belong to other partitions
    assert mark.value == 0
    raised = mark.raised_to(4)
    assert (raised.value, raised.settled_above) == (5, set())
    assert raised.raised_to(3) is raised, "a stale floor never moves the watermark back"
    assert Watermark(0).advanced({7}, stored=0).raised_to(5).settled_above == {7}
