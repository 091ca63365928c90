"""The projection runner: consume the stream in batches, apply each batch exactly once in effect.

A batch is applied in one Postgres transaction together with the projection's bookkeeping: the
last applied version of every aggregate it touched, and the stream position below which every
message is settled. Messages are acknowledged only after that commit. A redelivered message finds
its version already applied and is skipped; a message that arrives ahead of an earlier version of
its own aggregate (JetStream may redeliver out of order) is deferred until the gap closes, so each
aggregate's events are applied in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import zlib
from typing import Protocol

import asyncpg
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.bus import Bus, BusUnavailable, Delivery, PullConsumer
from gatherly.db import create_engine
from gatherly.envelope import Envelope, MalformedEnvelope, from_json
from gatherly.metrics import (
    ProjectionMetrics,
    projector_metrics_port,
    sample_every,
    serve_metrics,
)
from gatherly.settings import Settings, to_libpq_url
from gatherly.settlement import BatchOutcome, Watermark, order_batch
from gatherly.telemetry import link_to, tracer

log = logging.getLogger(__name__)

RETRYABLE = (OSError, TimeoutError, asyncpg.PostgresError, DBAPIError, BusUnavailable)
GAP_RETRY_SECONDS = 0.5


class Projection(Protocol):
    """A read model built from facts. `apply` gets each aggregate's new events in order."""

    name: str
    schema: str

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None: ...

    async def reset(self, conn: AsyncConnection) -> None: ...


class GenerationChanged(Exception):
    """The projection was reset for a rebuild; restart from its new checkpoint."""




def leader_key(projection: str) -> int:
    """Held for as long as one runner is the projection's only consumer."""
    return zlib.crc32(f"gatherly-projection-leader:{projection}".encode())


class ProjectionRunner:
    def __init__(self, settings: Settings, projection: Projection, engine: AsyncEngine) -> None:
        self.settings = settings
        self.projection = projection
        self.engine = engine
        self.stopping = asyncio.Event()
        self.generation = 0
        # The checkpoint is a watermark: every stream sequence at or below it is settled. A
        # message settled above it (JetStream may deliver out of order) waits here until the
        # sequences below it are settled too.
        self.watermark = Watermark()
        self._pending = Watermark()
        self.applied = 0
        self.metrics = ProjectionMetrics(projection.name, settings.stream_name)

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
            key = leader_key(self.projection.name)
            while not await leader.fetchval("SELECT pg_try_advisory_lock($1)", key):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
                if self.stopping.is_set():
                    return
            await self._consume_while_leader(leader)
        finally:
            if not leader.is_closed():
                await leader.close()

    async def _consume_while_leader(self, leader: asyncpg.Connection) -> None:
        checkpoint, self.generation = await self.checkpoint()
        self.watermark = Watermark(checkpoint)
        bus = await Bus.connect(
            self.settings.nats, stream=self.settings.stream_name, name=self.projection.name
        )
        sampler = asyncio.create_task(
            sample_every(self.settings.metrics_sample_seconds, self.stopping,
                         lambda: self._sample_lag(bus))
        )
        try:
            await bus.ensure_stream(
                duplicate_window=self.settings.duplicate_window_seconds,
                replicas=self.settings.stream_replicas,
            )
            consumer = await bus.pull_consumer(
                self.projection.name,
                start_sequence=checkpoint + 1,
                ack_wait=self.settings.projection_ack_wait_seconds,
                max_ack_pending=self.settings.projection_batch_size * 4,
            )
            await self._consume(consumer, leader)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await bus.close()

    async def _sample_lag(self, bus: Bus) -> None:
        last = await bus.last_sequence()
        self.metrics.stream_last.set(last)
        self.metrics.lag.set(max(0, last - self.watermark.value))

    async def _consume(self, consumer: PullConsumer, leader: asyncpg.Connection) -> None:
        """Fetch the next batch while the current one is applied: the stream and the database
        work in parallel. A fetch abandoned on exit only delays its messages to redelivery."""
        batch = self.settings.projection_batch_size
        upcoming = asyncio.ensure_future(consumer.fetch(batch, wait=1.0))
        try:
            while not self.stopping.is_set() and not leader.is_closed():
                deliveries = await upcoming
                upcoming = asyncio.ensure_future(consumer.fetch(batch, wait=1.0))
                if not deliveries:
                    if (await self.checkpoint())[1] != self.generation:
                        raise GenerationChanged
                    continue
                outcome = await self.apply_batch(deliveries)
                await self._settle(outcome)
        finally:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, BusUnavailable):
                await upcoming

    async def apply_batch(self, deliveries: list[Delivery]) -> BatchOutcome:
        links = [link for d in deliveries if (link := link_to(d.headers)) is not None]
        with tracer().start_as_current_span(
            f"{self.projection.name} process",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.batch.message_count": len(deliveries),
                "messaging.consumer.group.name": self.projection.name,
            },
        ):
            started = time.perf_counter()
            async with self.engine.begin() as conn:
                outcome = await self._apply_in(conn, deliveries)
            self.watermark = self._pending
            self._measure(len(deliveries), time.perf_counter() - started)
            return outcome

    def _measure(self, batch_size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(batch_size)
        self.metrics.batch_duration.observe(seconds)
        self.metrics.checkpoint.set(self.watermark.value)
        self.metrics.last_batch.set(time.time())

    async def _apply_in(self, conn: AsyncConnection, deliveries: list[Delivery]) -> BatchOutcome:
        name = self.projection.name
        # The row lock serialises every transaction that changes this projection (a second
        # runner, a replay's reset), so versions read below cannot change before commit.
        row = (
            await conn.execute(
                text(
                    "SELECT stream_seq, generation FROM projection_checkpoint"
                    " WHERE projection = :p FOR UPDATE"
                ),
                {"p": name},
            )
        ).one()
        if row.generation != self.generation:
            raise GenerationChanged
        outcome, envelopes = BatchOutcome(), {}
        for delivery in deliveries:
            try:
                envelopes[delivery.stream_sequence] = from_json(delivery.payload)
            except MalformedEnvelope as error:
                log.error("%s: poison message %d: %s", name, delivery.stream_sequence, error)
                outcome.poison.append(delivery)
        applied = await self._applied_versions(conn, {e.subject for e in envelopes.values()})
        to_apply = order_batch(deliveries, envelopes, applied, outcome)
        self._pending = self.watermark.advanced(outcome.settled, row.stream_seq)
        if to_apply:
            await self.projection.apply(conn, to_apply)
            await self._record_versions(conn, to_apply)
        await conn.execute(
            text(
                "UPDATE projection_checkpoint SET stream_seq = :s, updated_at = now()"
                " WHERE projection = :p"
            ),
            {"p": name, "s": self._pending.value},
        )
        return outcome



    async def _applied_versions(self, conn: AsyncConnection, streams: set[str]) -> dict[str, int]:
        if not streams:
            return {}
        result = await conn.execute(
            text(
                "SELECT stream_id, version FROM projection_applied"
                " WHERE projection = :p AND stream_id = ANY(:s)"
            ),
            {"p": self.projection.name, "s": list(streams)},
        )
        return {row.stream_id: row.version for row in result}

    async def _record_versions(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        latest: dict[str, int] = {}
        for envelope in events:
            latest[envelope.subject] = max(latest.get(envelope.subject, 0), envelope.sequence)
        await conn.execute(
            text(
                "INSERT INTO projection_applied (projection, stream_id, version)"
                " SELECT :p, * FROM unnest(CAST(:s AS text[]), CAST(:v AS int[]))"
                " ON CONFLICT (projection, stream_id) DO UPDATE SET version = excluded.version"
            ),
            {"p": self.projection.name, "s": list(latest), "v": list(latest.values())},
        )

    async def _settle(self, outcome: BatchOutcome) -> None:
        for delivery in [*outcome.applied, *outcome.duplicates]:
            await delivery.ack()
        for delivery in outcome.deferred:
            await delivery.nak(delay=min(GAP_RETRY_SECONDS * delivery.delivered_count, 30.0))
        for delivery in outcome.poison:
            await delivery.term()
        self.applied += len(outcome.applied)
        self.metrics.applied.inc(len(outcome.applied))
        self.metrics.duplicates.inc(len(outcome.duplicates))
        self.metrics.deferred.inc(len(outcome.deferred))
        self.metrics.poison.inc(len(outcome.poison))

    async def checkpoint(self) -> tuple[int, int]:
        """(stream sequence settled so far, generation), creating the row on first use."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO projection_checkpoint (projection) VALUES (:p)"
                    " ON CONFLICT DO NOTHING"
                ),
                {"p": self.projection.name},
            )
            row = (
                await conn.execute(
                    text(
                        "SELECT stream_seq, generation FROM projection_checkpoint"
                        " WHERE projection = :p"
                    ),
                    {"p": self.projection.name},
                )
            ).one()
        return int(row.stream_seq), int(row.generation)


async def run_projection(settings: Settings, projection: Projection) -> None:
    """`gatherly project <name>`: run until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = create_engine(settings.database, projection.schema, pool_size=2)
    runner = ProjectionRunner(settings, projection, engine)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, runner.stopping.set)
    serve_metrics(settings.host, projector_metrics_port(settings, projection.name))
    try:
        await runner.run()
    finally:
        await engine.dispose()
