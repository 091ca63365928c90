"""Which messages of a batch to apply, skip or defer, how far the checkpoint may move, and which
message acknowledges the batch. Pure.

Per aggregate, the next version is applied, an older one is a duplicate (a redelivery), a later
one waits for the gap to close (JetStream may deliver out of order). The checkpoint is a
watermark: every stream sequence at or below it is settled, so a restart from it loses nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from opentelemetry.trace import Link

from gatherly.bus import Delivery
from gatherly.envelope import Envelope, MalformedEnvelope, from_json
from gatherly.telemetry import link_to, spans_recorded

log = logging.getLogger(__name__)


@dataclass
class Received:
    """A fetched batch, parsed before its turn to be applied: the envelopes by stream sequence,
    the messages that are no envelope at all, and the trace each message continues."""

    deliveries: list[Delivery] = field(default_factory=list)
    envelopes: dict[int, Envelope] = field(default_factory=dict)
    poison: list[Delivery] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @classmethod
    def of(cls, deliveries: list[Delivery]) -> Received:
        batch = cls()
        batch.add(deliveries)
        return batch

    def add(self, deliveries: list[Delivery]) -> None:
        linked = spans_recorded()  # a link costs an extraction per message, for nobody otherwise
        for delivery in deliveries:
            self.deliveries.append(delivery)
            if linked and (link := link_to(delivery.headers)) is not None:
                self.links.append(link)
            try:
                self.envelopes[delivery.stream_sequence] = from_json(delivery.payload)
            except MalformedEnvelope as error:
                log.error("poison message %d: %s", delivery.stream_sequence, error)
                self.poison.append(delivery)


@dataclass
class BatchOutcome:
    applied: list[Delivery] = field(default_factory=list)
    duplicates: list[Delivery] = field(default_factory=list)
    deferred: list[Delivery] = field(default_factory=list)
    poison: list[Delivery] = field(default_factory=list)

    @property
    def settled_deliveries(self) -> list[Delivery]:
        """Done with for good: applied, already applied before, or no envelope at all."""
        return [*self.applied, *self.duplicates, *self.poison]

    @property
    def settled(self) -> set[int]:
        return {d.stream_sequence for d in self.settled_deliveries}


def untracked(envelope: Envelope, single_event_types: frozenset[str] | None) -> bool:
    """An aggregate of one event (a view): no version to keep, nothing to wait for. None: no
    event is tracked (a projection that reads only some types never sees whole aggregates)."""
    return single_event_types is None or (
        envelope.sequence == 1 and envelope.type in single_event_types)


def order_batch(
    deliveries: list[Delivery],
    envelopes: dict[int, Envelope],
    applied: dict[str, int],
    outcome: BatchOutcome,
    single_event_types: frozenset[str] | None = frozenset(),
) -> list[Envelope]:
    """Each aggregate's next versions in order; fills `outcome` with what happens to the rest.

    `envelopes` maps stream sequence to the parsed event (poison messages are absent);
    `applied` is the last applied version of each aggregate the batch touches. An event of
    `single_event_types` is applied as it comes, a redelivery too: the projection writes it
    idempotently."""
    by_stream: dict[str, list[Delivery]] = defaultdict(list)
    to_apply: list[Envelope] = []
    for delivery in deliveries:
        if (envelope := envelopes.get(delivery.stream_sequence)) is None:
            continue
        if untracked(envelope, single_event_types):
            to_apply.append(envelope)
            outcome.applied.append(delivery)
        else:
            by_stream[envelope.subject].append(delivery)
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


def acknowledgement(
    settled: list[Delivery], redelivering: set[int]
) -> tuple[Delivery | None, Delivery | None]:
    """(the message to ack now, the latest settled message to ack later) for a consumer whose
    ack also settles every earlier message of it. The ack is the latest settled message below
    every message still waiting for redelivery (JetStream would drop those); the one kept back,
    if any, is acked once those gaps close. Stream order, as the server settles: an ack of stream
    sequence S removes every pending message at or below S, whenever it was delivered."""
    below = min(redelivering, default=None)
    ack = max((d for d in settled if below is None or d.stream_sequence < below),
              key=lambda d: d.stream_sequence, default=None)
    latest = max(settled, key=lambda d: d.stream_sequence, default=None)
    return ack, (None if latest is ack else latest)


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
