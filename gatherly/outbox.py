"""The outbox relay: tail a service's event store in commit order and publish to JetStream.

Exactly once on the stream per event id: the relay may publish an event twice (it crashed before
saving its checkpoint, or an ack was lost), and the stream drops the second copy because
`Nats-Msg-Id` is the event id and the duplicate window outlasts the relay's retry horizon. The
checkpoint moves only over events the stream acknowledged. One relay per database publishes: the
others wait on a Postgres advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import zlib
from datetime import datetime

import asyncpg
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.bus import Bus, BusUnavailable, OutgoingMessage
from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.eventstore import START, EventStore, Position
from gatherly.metrics import RelayMetrics, relay_metrics_port, sampling, serve_metrics
from gatherly.settings import Settings, to_libpq_url
from gatherly.telemetry import (
    context_from_traceparent,
    passed_on,
    spans_recorded,
    trace_headers,
    tracer,
)

log = logging.getLogger(__name__)

RETRYABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DBAPIError,
    BusUnavailable,
)


class Relay:
    def __init__(self, settings: Settings, schema: str, engine: AsyncEngine) -> None:
        self.settings = settings
        self.schema = schema
        self.engine = engine
        # Every statement of the relay stands alone (a read, a count, one upsert): on an
        # autocommit connection each is its own transaction, without SQLAlchemy's BEGIN and
        # ROLLBACK/COMMIT round trips around it (two of a read's three round trips).
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.store = EventStore(source=f"/gatherly/{schema}")
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.published = 0
        self.metrics = RelayMetrics(schema)

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"gatherly-relay:{self.schema}".encode())

    async def run(self) -> None:
        """Elect, publish until leadership or a connection is lost, and start over until stopped."""
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                await self._lead()
                backoff = 0.2
            except RETRYABLE as error:
                log.warning("relay %s: %s; retrying in %.1fs", self.schema, error, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _lead(self) -> None:
        leader = await asyncpg.connect(to_libpq_url(self.settings.database), timeout=5)
        try:
            while not await leader.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                if await self._sleep(1.0):
                    return
            await leader.add_listener(self.store.wake_channel, lambda *_: self._wake.set())
            self.metrics.leader.set(1)
            bus = await Bus.connect(
                self.settings.nats,
                stream=self.settings.stream_name,
                name=f"relay-{self.schema}",
                max_in_flight=self.settings.relay_max_in_flight,
            )
            try:
                await bus.ensure_stream(
                    duplicate_window=self.settings.duplicate_window_seconds,
                    replicas=self.settings.stream_replicas,
                )
                await self._publish_while_leader(leader, bus)
            finally:
                await bus.close()
        finally:
            self.metrics.leader.set(0)
            if not leader.is_closed():
                await leader.close()

    async def _publish_while_leader(self, leader: asyncpg.Connection, bus: Bus) -> None:
        position = saved = await self.load_checkpoint()
        saved_at = time.monotonic()
        while not self.stopping.is_set() and not leader.is_closed():
            self._wake.clear()  # before the read: a NOTIFY during it wakes the next wait at once
            async with self._autocommit.connect() as conn:
                batch = await self.store.read_all(conn, position, self.settings.relay_batch_size)
            if batch:
                acknowledged = await bus.publish_pipelined(
                    [self.message(envelope) for _, envelope in batch],
                    ack_timeout=self.settings.relay_ack_timeout_seconds,
                )
                if acknowledged:
                    position = batch[acknowledged - 1][0]
                    self.published += acknowledged
                    self._measure(batch[0][1], acknowledged)
                if acknowledged < len(batch):
                    await self._sleep(0.5)
                elif len(batch) < self.settings.relay_batch_size:
                    # Read again, as always after a batch (a commit the read did not see yet,
                    # behind an older open transaction, may have NOTIFYed before it), but a few
                    # ms later, so that joins committing meanwhile travel together.
                    await self._linger()
                if time.monotonic() - saved_at < self.settings.relay_checkpoint_seconds:
                    continue
            if position != saved:
                # Saved when idle, else at most every relay_checkpoint_seconds, not per batch (a
                # transaction per join at join rates): a checkpoint that lags only makes a
                # restarted relay publish again events the stream's duplicate window drops.
                await self.save_checkpoint(position)
                saved = position
            saved_at = time.monotonic()
            if batch:
                continue
            if await self._sleep(self.settings.relay_poll_seconds, wake=True):
                break
            if self._wake.is_set():
                await self._linger()
        if position != saved and not leader.is_closed():
            await self.save_checkpoint(position)

    async def _linger(self) -> None:
        """Joins come one by one: a few ms let those committing together share one read, one
        publish and one checkpoint (and reach the projectors as one batch)."""
        if self.settings.relay_linger_seconds:
            await self._sleep(self.settings.relay_linger_seconds)

    def _measure(self, oldest: Envelope, acknowledged: int) -> None:
        self.metrics.published.inc(acknowledged)
        if oldest.recorded_at is not None:
            self.metrics.delay.observe(time.time() - oldest.recorded_at.timestamp())

    async def sample_lag(self) -> None:
        """Events committed but not yet acknowledged by the stream, from the saved checkpoint
        (so a standby relay reports the same number as the leader)."""
        checkpoint = await self.load_checkpoint()
        async with self._autocommit.connect() as conn:
            self.metrics.unpublished.set(await self.store.count_after(conn, checkpoint))

    def message(self, envelope: Envelope) -> OutgoingMessage:
        return OutgoingMessage(
            subject=envelope.nats_subject,
            payload=envelope.to_json(),
            message_id=envelope.id,
            headers=self._trace_headers(envelope),
        )

    def _trace_headers(self, envelope: Envelope) -> dict[str, str]:
        """The event's trace context, continued in a producer span when spans are recorded.
        When they are not, the span is a no-op that passes the stored context on unchanged:
        a canonical traceparent is then the header itself, without a span and two propagator
        round trips per event (a tenth of the relay's CPU per fact)."""
        traceparent = envelope.traceparent
        if not spans_recorded() and (unchanged := passed_on(traceparent)) is not None:
            return unchanged
        with tracer().start_as_current_span(
            f"{envelope.nats_subject} publish",
            context=context_from_traceparent(traceparent),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "publish",
                "messaging.destination.name": envelope.nats_subject,
                "messaging.message.id": envelope.id,
            },
        ):
            return trace_headers()

    async def load_checkpoint(self) -> Position:
        async with self._autocommit.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT tx_id, position FROM relay_checkpoint WHERE relay = :r"),
                    {"r": self.schema},
                )
            ).first()
        return Position(row.tx_id, row.position) if row else START

    async def save_checkpoint(self, position: Position) -> None:
        async with self._autocommit.connect() as conn:
            await conn.execute(
                text(
                    "INSERT INTO relay_checkpoint (relay, tx_id, position) VALUES (:r, :t, :p)"
                    " ON CONFLICT (relay) DO UPDATE SET tx_id = excluded.tx_id,"
                    " position = excluded.position, updated_at = now()"
                ),
                {"r": self.schema, "t": position.tx_id, "p": position.position},
            )

    async def _sleep(self, seconds: float, *, wake: bool = False) -> bool:
        """Sleep until timeout, stop, or (if `wake`) a NOTIFY hint; True when stopping."""
        waiters = [asyncio.ensure_future(self.stopping.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        _, pending = await asyncio.wait(
            waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()
        return self.stopping.is_set()


async def republish(settings: Settings, schema: str, since: datetime) -> int:
    """Publish again every event recorded since `since`, in commit order; returns the count.

    The recovery for a stream that lost acknowledged messages (JetStream without
    `sync_interval: always` after an OS crash): Postgres is the source of truth. Copies the stream
    still holds are dropped by its duplicate window, or skipped by consumers (they apply each
    aggregate version once). Independent of the running relay, which it does not disturb."""
    engine = create_engine(settings.database, schema, pool_size=1)
    store = EventStore(source=f"/gatherly/{schema}")
    relay = Relay(settings, schema, engine)
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name=f"republish-{schema}")
    published = 0
    try:
        await bus.ensure_stream(
            duplicate_window=settings.duplicate_window_seconds, replicas=settings.stream_replicas
        )
        async with engine.connect() as conn:
            first = (
                await conn.execute(
                    text(
                        "SELECT tx_id::text::bigint AS tx, position FROM events"
                        " WHERE recorded_at >= :since ORDER BY tx_id, position LIMIT 1"
                    ),
                    {"since": since},
                )
            ).first()
        position = Position(first.tx, first.position - 1) if first else None
        while position is not None:
            async with engine.connect() as conn:
                batch = await store.read_all(conn, position, settings.relay_batch_size)
            if not batch:
                break
            messages = [relay.message(envelope) for _, envelope in batch]
            acknowledged = await bus.publish_pipelined(
                messages, ack_timeout=settings.relay_ack_timeout_seconds
            )
            if acknowledged < len(batch):
                raise BusUnavailable(f"the stream acknowledged {acknowledged} of {len(batch)}")
            published += acknowledged
            position = batch[-1][0]
    finally:
        await bus.close()
        await engine.dispose()
    return published


async def run_relay(settings: Settings, schema: str) -> None:
    """`gatherly relay <schema>`: run until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = create_engine(settings.database, schema, pool_size=2)
    relay = Relay(settings, schema, engine)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, relay.stopping.set)
    serve_metrics(settings.host, relay_metrics_port(settings, schema))
    try:
        async with sampling(settings.metrics_sample_seconds, relay.sample_lag):
            await relay.run()
    finally:
        relay.stopping.set()
        await engine.dispose()
