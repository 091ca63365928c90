"""Which messages a projection applies, skips or defers, and how far its checkpoint moves."""

from __future__ import annotations

from datetime import UTC, datetime

from gatherly.bus import Delivery
from gatherly.envelope import Envelope
from gatherly.settlement import (
    BatchOutcome,
    Received,
    Watermark,
    acknowledgement,
    order_batch,
    untracked,
)

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


def test_a_single_event_aggregate_is_applied_as_it_comes_without_a_version() -> None:
    views = frozenset({"gatherly.member.joined"})  # `event` builds joins; here they stand alone
    deliveries = [delivery(1), delivery(2)]
    envelopes = {1: event("v1", 1), 2: event("m1", 2)}
    outcome = BatchOutcome()
    applied = order_batch(deliveries, envelopes, {"v1": 1}, outcome, views)
    assert [e.id for e in applied] == ["v1-1"], "a redelivered one too: the write is idempotent"
    assert [d.stream_sequence for d in outcome.deferred] == [2], "version 2 is tracked as ever"
    assert untracked(event("v1", 1), views) and not untracked(event("v1", 2), views)


def test_with_no_tracking_every_event_is_applied_as_it_comes() -> None:
    """A projection filtered to some types sees a later version without the ones before it."""
    deliveries = [delivery(1), delivery(2)]
    envelopes = {1: event("m1", 3), 2: event("m1", 3)}
    outcome = BatchOutcome()
    applied = order_batch(deliveries, envelopes, {"m1": 5}, outcome, None)
    assert [e.id for e in applied] == ["m1-3", "m1-3"]
    assert outcome.deferred == outcome.duplicates == []
    assert untracked(event("m1", 3), None)


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


def test_one_cumulative_ack_settles_the_batch_at_its_latest_settled_message() -> None:
    _, outcome = decide([(5, "m1", 1), (9, "m2", 1), (7, "m3", 1), (8, "m1", 1)], {})
    outcome.poison.append(delivery(11))
    ack, later = acknowledgement(outcome.settled_deliveries, redelivering=set())
    assert ack is not None and ack.stream_sequence == 11, "poison is settled too (terminated)"
    assert later is None


def test_no_cumulative_ack_passes_a_message_waiting_for_redelivery() -> None:
    _, outcome = decide([(5, "m1", 1), (6, "m1", 3), (7, "m2", 1)], {})
    assert [d.stream_sequence for d in outcome.deferred] == [6]
    ack, later = acknowledgement(outcome.settled_deliveries, redelivering={6})
    assert (ack and ack.stream_sequence, later and later.stream_sequence) == (5, 7)
    ack, later = acknowledgement(outcome.settled_deliveries, redelivering={3, 6})
    assert ack is None, "a gap from an earlier batch holds every ack above it back"
    assert later is not None and later.stream_sequence == 7
    ack, later = acknowledgement([delivery(6), later], redelivering=set())
    assert (ack and ack.stream_sequence, later) == (7, None), "acked once the gaps close"


def test_a_received_batch_sets_poison_apart_from_the_envelopes() -> None:
    good = Delivery(payload=event("m1", 1).to_json(), headers={},
                    stream_sequence=1, delivered_count=1, _msg=None)  # type: ignore[arg-type]
    batch = Received.of([good, delivery(2)])
    assert list(batch.envelopes) == [1]
    assert [d.stream_sequence for d in batch.poison] == [2]
    assert [d.stream_sequence for d in batch.deliveries] == [1, 2]
