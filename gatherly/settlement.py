"""Which messages of a batch to apply, skip or defer, and how far the checkpoint may move. Pure.

Per aggregate, the next version is applied, an older one is a duplicate (a redelivery), a later
one waits for the gap to close (JetStream may deliver out of order). The checkpoint is a
watermark: every stream sequence at or below it is settled, so a restart from it loses nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gatherly.bus import Delivery
from gatherly.envelope import Envelope


@dataclass
class BatchOutcome:
    applied: list[Delivery] = field(default_factory=list)
    duplicates: list[Delivery] = field(default_factory=list)
    deferred: list[Delivery] = field(default_factory=list)
    poison: list[Delivery] = field(default_factory=list)

    @property
    def settled(self) -> set[int]:
        return {d.stream_sequence for d in [*self.applied, *self.duplicates, *self.poison]}


def order_batch(
    deliveries: list[Delivery],
    envelopes: dict[int, Envelope],
    applied: dict[str, int],
    outcome: BatchOutcome,
) -> list[Envelope]:
    """Each aggregate's next versions in order; fills `outcome` with what happens to the rest.

    `envelopes` maps stream sequence to the parsed event (poison messages are absent);
    `applied` is the last applied version of each aggregate the batch touches."""
    by_stream: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.stream_sequence in envelopes:
            by_stream[envelopes[delivery.stream_sequence].subject].append(delivery)
    to_apply: list[Envelope] = []
    for stream_id, stream_deliveries in by_stream.items():
        stream_deliveries.sort(key=lambda d: envelopes[d.stream_sequence].sequence)
        version = applied.get(stream_id, 0)
        for delivery in stream_deliveries:
            envelope = envelopes[delivery.stream_sequence]
            if envelope.sequence <= version:
                outcome.duplicates.append(delivery)
            elif envelope.sequence == version + 1:
                to_apply.append(envelope)
                outcome.applied.append(delivery)
                version = envelope.sequence
            else:
                outcome.deferred.append(delivery)
    return to_apply


@dataclass
class Watermark:
    """The settled stream position, and what is settled above it while a gap stays open."""

    value: int = 0
    settled_above: set[int] = field(default_factory=set)

    def advanced(self, settled: set[int], stored: int) -> Watermark:
        """The watermark once `settled` is committed; `stored` is what the database holds."""
        value = max(self.value, stored)
        pending = self.settled_above | settled
        while value + 1 in pending:
            value += 1
        return Watermark(value, {s for s in pending if s > value})

    def raised_to(self, floor: int) -> Watermark:
        """At least `floor`: a partition's consumer sees only its own sequences, so the gaps
        between them never fill; the server's ack floor (everything at or below it acked, and
        acks follow commits) is the position that jumps them."""
        if floor <= self.value:
            return self
        return Watermark(floor).advanced(self.settled_above, stored=floor)
