"""The projection runner: consume the stream in batches, apply each batch exactly once in effect.

A batch is applied in one Postgres transaction together with the projection's bookkeeping: the
last applied version of every aggregate it touched, and the stream position below which every
message is settled. Messages are acknowledged only after that commit, by one cumulative ack per
batch (`settlement.acknowledgement`). A redelivered message finds
its version already applied and is skipped; a message that arrives ahead of an earlier version of
its own aggregate (JetStream may redeliver out of order) is deferred until the gap closes, so each
aggregate's events are applied in order.

A runner consumes one partition of the stream (docs/adr/0005; the default, partition 0 of 1, is
the whole stream) and leads it alone under a Postgres advisory lock; `gatherly.projector` runs a
process's runners and hands partitions between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Protocol

import asyncpg
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly import bookkeeping
from gatherly.bus import (
    Bus,
    BusUnavailable,
    Delivery,
    PartitionMismatch,
    PullConsumer,
    in_slices,
)
from gatherly.envelope import Envelope
from gatherly.metrics import ProjectionMetrics, sampling
from gatherly.partition import Partition
from gatherly.poison import apply_isolating
from gatherly.settings import Settings, to_libpq_url
from gatherly.settlement import (
    BatchOutcome,
    Received,
    Watermark,
    acknowledgement,
    order_batch,
    untracked,
)
from gatherly.telemetry import tracer

log = logging.getLogger(__name__)

RETRYABLE = (OSError, TimeoutError, asyncpg.PostgresError, DBAPIError, BusUnavailable)
GAP_RETRY_SECONDS = 0.5
# JetStream sends nothing new while this many messages are unacknowledged, and a deferred message
# stays unacknowledged until the earlier versions it waits for are applied. With a few times a
# small batch as the bound, messages waiting for predecessors further on in the stream could fill
# it, and none of them would ever come: the consumer would stall for good.
MIN_ACK_PENDING = 1000


class Projection(Protocol):
    """A read model built from facts. `apply` gets each aggregate's new events in order.

    `single_event_types`: facts that are a whole aggregate in one event (a view), which the
    projection writes idempotently; the runner keeps no version for them.

    `durable_commits` False: a batch's commit does not wait for the disk. For a read model the
    stream rebuilds: a crash that loses the last commits loses their checkpoint with them, and the
    runner, which recreates its consumer at the stored checkpoint whenever it leads, replays the
    stream from the checkpoint that survived; no fact is lost or counted twice.
    """

    name: str
    schema: str
    single_event_types: frozenset[str]
    durable_commits: bool
    # The only fact types it reads, None for every one: the consumer is filtered to them, so
    # NATS never sends the rest (a consumer of one rare fact would otherwise parse the stream).
    # Such a projection sees only some versions of an aggregate, so the runner keeps no versions
    # for it and applies each fact as it comes, a redelivered one again: `apply` is idempotent.
    fact_types: frozenset[str] | None

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None: ...

    async def reset(self, conn: AsyncConnection) -> None: ...


class GenerationChanged(Exception):
    """The projection was reset for a rebuild; restart from its new checkpoint."""


class Turn(Protocol):
    """Whether this process should lead a partition now (the projector balances processes)."""

    def may_take(self, partition: Partition) -> bool: ...

    def must_yield(self, partition: Partition) -> bool: ...

    def holding(self, partition: Partition, held: bool) -> None: ...


class EveryTurn:
    """A runner on its own: take the partition whenever its lock is free, never hand it over."""

    def may_take(self, partition: Partition) -> bool:
        return True

    def must_yield(self, partition: Partition) -> bool:
        return False

    def holding(self, partition: Partition, held: bool) -> None:
        return None


class ProjectionRunner:
    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        engine: AsyncEngine,
        *,
        partition: Partition | None = None,
        turn: Turn | None = None,
    ) -> None:
        self.settings = settings
        self.projection = projection
        self.engine = engine
        self.partition = partition or Partition()
        self.subjects = self.partition.subjects_of(projection.fact_types)
        # Reads every message of the stream: its watermark closes its own gaps (see _acked_through).
        self.whole_stream = self.partition.whole and projection.fact_types is None
        self.turn: Turn = turn or EveryTurn()
        self.stopping = asyncio.Event()
        self.generation = 0
        # The checkpoint is a watermark: every stream sequence at or below it is settled. A
        # message settled above it (JetStream may deliver out of order) waits here until the
        # sequences below it are settled too.
        self.watermark = Watermark()
        self._pending = Watermark()
        # Deferred messages nakked for redelivery and not yet settled: no cumulative ack may
        # pass them, or JetStream would drop them.
        self.redelivering: set[int] = set()
        self._unacked: Delivery | None = None
        self.applied = 0
        self.metrics = ProjectionMetrics(projection.name, settings.stream_name,
                                         self.partition.label)

    @property
    def title(self) -> str:
        whole = self.partition.whole
        return self.projection.name + ("" if whole else f" partition {self.partition.label}")

    async def run(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                await self._lead()
                backoff = 0.2
            except GenerationChanged:
                log.info("projection %s reset; rebuilding from the stream", self.projection.name)
            except RETRYABLE as error:
                log.warning("projection %s: %s; retrying", self.projection.name, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), backoff)
                backoff = min(backoff * 2, 5.0)

    async def _lead(self) -> None:
        leader = await asyncpg.connect(to_libpq_url(self.settings.database), timeout=5)
        try:
            key = self.partition.leader_key(self.projection.name)
            while not (self.turn.may_take(self.partition)
                       and await leader.fetchval("SELECT pg_try_advisory_lock($1)", key)):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
                if self.stopping.is_set():
                    return
            self.turn.holding(self.partition, True)
            log.info("projection %s: leading", self.title)
            try:
                await self._consume_while_leader(leader)
            finally:
                self.turn.holding(self.partition, False)
                self.metrics.forget()
                # Said before the lock goes, so in the logs it precedes the next leader's line.
                log.info("projection %s: released", self.title)
        finally:
            if not leader.is_closed():
                await leader.close()  # ends the session, so the lock is free for another runner

    async def _consume_while_leader(self, leader: asyncpg.Connection) -> None:
        checkpoint, self.generation = await self.checkpoint()
        self.watermark = Watermark(checkpoint)
        # The consumer is recreated at the checkpoint: every message after it comes again.
        self.redelivering, self._unacked = set(), None
        bus = await Bus.connect(
            self.settings.nats, stream=self.settings.stream_name,
            name=self.partition.durable(self.projection.name),
        )
        try:
            await bus.ensure_stream(
                duplicate_window=self.settings.duplicate_window_seconds,
                replicas=self.settings.stream_replicas,
                partitions=self.settings.stream_partitions,
            )
            if not self.partition.whole and await bus.partitions() != self.partition.count:
                raise PartitionMismatch(f"{self.title}: the stream is partitioned otherwise")
            consumer = await bus.pull_consumer(
                self.partition.durable(self.projection.name),
                start_sequence=checkpoint + 1,
                ack_wait=self.settings.projection_ack_wait_seconds,
                max_ack_pending=max(self.settings.projection_batch_size * 4, MIN_ACK_PENDING),
                filter_subject=self.subjects,
                cumulative_acks=True,
            )
            async with sampling(self.settings.metrics_sample_seconds,
                                lambda: self._sample_lag(bus, consumer)):
                await self._consume(consumer, leader)
        finally:
            await bus.close()

    async def _sample_lag(self, bus: Bus, consumer: PullConsumer) -> None:
        last = await bus.last_sequence()
        self.metrics.stream_last.set(last)
        if self.whole_stream:
            self.metrics.lag.set(max(0, last - self.watermark.value))
        else:  # the stream's other partitions and facts are no lag of this one
            self.metrics.lag.set((await consumer.progress()).outstanding)

    async def _consume(self, consumer: PullConsumer, leader: asyncpg.Connection) -> None:
        """Fetch and parse the next batch while the current one is applied: the process works
        while Postgres does. A fetch abandoned on exit only delays its messages to redelivery."""
        upcoming = asyncio.ensure_future(self._receive(consumer))
        try:
            while not (self.stopping.is_set() or leader.is_closed()
                       or self.turn.must_yield(self.partition)):
                batch = await upcoming
                upcoming = asyncio.ensure_future(self._receive(consumer))
                floor = await self._acked_through(consumer)
                if not batch.deliveries:
                    if (await self.checkpoint())[1] != self.generation:
                        raise GenerationChanged
                    if floor > self.watermark.value:
                        await self.apply_batch(Received(), acked_through=floor)
                    continue
                apply = functools.partial(self.apply_batch, acked_through=floor)
                for outcome in await apply_isolating(apply, batch, self.projection.name):
                    await self._settle(outcome)
        finally:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, BusUnavailable):
                await upcoming

    async def _receive(self, consumer: PullConsumer) -> Received:
        batch = Received()
        deliveries = await consumer.fetch(self.settings.projection_batch_size, wait=1.0)
        async for part in in_slices(deliveries):
            batch.add(part)
        return batch

    async def _acked_through(self, consumer: PullConsumer) -> int:
        """The whole stream's watermark closes its own gaps; a filtered consumer's never would."""
        if self.whole_stream:
            return 0
        return (await consumer.progress()).acked_through

    async def apply_batch(
        self, batch: Received, *, acked_through: int = 0
    ) -> BatchOutcome:
        with tracer().start_as_current_span(
            f"{self.projection.name} process",
            kind=SpanKind.CONSUMER,
            links=batch.links,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.batch.message_count": len(batch.deliveries),
                "messaging.consumer.group.name": self.partition.durable(self.projection.name),
            },
        ):
            started = time.perf_counter()
            async with self.engine.begin() as conn:
                outcome = await self._apply_in(conn, batch, acked_through)
            self.watermark = self._pending
            self._measure(len(batch.deliveries), time.perf_counter() - started)
            return outcome

    def _measure(self, batch_size: int, seconds: float) -> None:
        if batch_size:
            self.metrics.batch_size.observe(batch_size)
            self.metrics.batch_duration.observe(seconds)
        self.metrics.checkpoint.set(self.watermark.value)
        self.metrics.last_batch.set(time.time())

    async def _apply_in(
        self, conn: AsyncConnection, batch: Received, acked_through: int
    ) -> BatchOutcome:
        name = self.projection.name
        # The row lock serialises every transaction that changes this partition (a second
        # runner, a replay's reset), so versions read below cannot change before commit.
        stored, generation = await bookkeeping.lock_checkpoint(
            conn, name, self.partition.label, durable=self.projection.durable_commits)
        if generation != self.generation:
            raise GenerationChanged
        outcome = BatchOutcome(poison=list(batch.poison))
        # Filtered to some types, it sees part of each aggregate's versions: it tracks none, and
        # its `apply` is idempotent.
        single = None if self.projection.fact_types else self.projection.single_event_types
        tracked = {e.subject for e in batch.envelopes.values() if not untracked(e, single)}
        applied = await bookkeeping.applied_versions(conn, name, tracked)
        to_apply = order_batch(batch.deliveries, batch.envelopes, applied, outcome, single)
        self._pending = self.watermark.advanced(outcome.settled, stored).raised_to(acked_through)
        if to_apply:
            await self.projection.apply(conn, to_apply)
        await bookkeeping.save_progress(
            conn, name, self.partition.label, self._pending.value,
            [e for e in to_apply if not untracked(e, single)])
        return outcome

    async def _settle(self, outcome: BatchOutcome) -> None:
        for delivery in outcome.deferred:
            await delivery.nak(delay=min(GAP_RETRY_SECONDS * delivery.delivered_count, 30.0))
        for delivery in outcome.poison:
            await delivery.term()
        self.redelivering -= outcome.settled
        self.redelivering |= {d.stream_sequence for d in outcome.deferred}
        # A terminated message is settled already, and cannot be acknowledged as well.
        acked = [*outcome.applied, *outcome.duplicates]
        ack, self._unacked = acknowledgement(
            acked + ([self._unacked] if self._unacked else []), self.redelivering)
        if ack is not None:
            await ack.ack()
        self.applied += len(outcome.applied)
        self.metrics.applied.inc(len(outcome.applied))
        self.metrics.duplicates.inc(len(outcome.duplicates))
        self.metrics.deferred.inc(len(outcome.deferred))
        self.metrics.poison.inc(len(outcome.poison))

    async def checkpoint(self) -> tuple[int, int]:
        """(stream sequence settled so far, generation) of this runner's partition."""
        return await bookkeeping.read_checkpoint(
            self.engine, self.projection.name, self.partition.label)
