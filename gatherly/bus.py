"""The message bus: the only module that imports nats.

Everything else sees `Bus`, `OutgoingMessage`, `Delivery` and `PullConsumer`, so a service never
handles a nats type and the transport could change behind this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import NotFoundError, ServiceUnavailableError

from gatherly.partition import FACT_SUBJECT, partition_count, transform_destination

log = logging.getLogger(__name__)

SUBJECTS = ["gatherly.>"]
MSG_ID_HEADER = "Nats-Msg-Id"
# Atomic batch publishing (NATS >= 2.12, ADR-50): a batch is stored whole or not at all, with one
# fsync and one acknowledgement instead of one of each per message. The server refuses batches
# of more messages than its `max_msgs` limit, 1,000 unless configured.
BATCH_ID, BATCH_SEQUENCE, BATCH_COMMIT = "Nats-Batch-Id", "Nats-Batch-Sequence", "Nats-Batch-Commit"
ATOMIC_BATCH_MAX = 1000
# Messages handled between two yields to the event loop, in a fetch of many.
YIELD_EVERY = 100
T = TypeVar("T")


async def in_slices(items: list[T]) -> AsyncIterator[list[T]]:
    """`items` YIELD_EVERY at a time, yielding to the loop between slices: database work that
    waits on the loop (a batch being applied) goes on meanwhile."""
    for start in range(0, len(items), YIELD_EVERY):
        if start:
            await asyncio.sleep(0)
        yield items[start:start + YIELD_EVERY]


class BusUnavailable(Exception):
    """NATS could not be reached or did not answer in time; the caller retries."""


class PartitionMismatch(Exception):
    """The stream holds facts partitioned one way and the settings ask for another: refused,
    since a consumer would silently miss the facts stored under the other count."""


@dataclass(frozen=True, slots=True)
class ConsumerProgress:
    acked_through: int  # every message of the consumer at or below this stream sequence is acked
    outstanding: int  # messages not yet delivered plus delivered but not yet acknowledged


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    subject: str
    payload: bytes
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Delivery:
    """One message handed to a consumer; ack only after its effect is committed."""

    payload: bytes
    headers: dict[str, str]
    stream_sequence: int
    delivered_count: int
    _msg: Msg

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self._msg.nak(delay=delay)

    async def term(self) -> None:
        await self._msg.term()


# JetStream's pull requests (ADR-13): the subject a request goes to, and the statuses its answers
# carry instead of a message. 404: nothing to deliver now; 408: the request expired; 409: a limit
# of the consumer (max ack pending, max waiting) ended it; 100: an idle heartbeat.
NEXT_MESSAGES = "$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
STATUS_HEADER = "Status"
HEARTBEAT = "100"
REQUEST_ENDED = frozenset({"404", "408", "409"})
ACK_SUBJECT_TOKENS = 9  # without a JetStream domain


class PullConsumer:
    """A durable pull consumer fetched over a subscription of its own.

    Not nats-py's `fetch`: it awaits each message through a task and a timeout of its own, which
    cost the projector more CPU than parsing the messages. Here one callback gathers what arrives.
    Every pull request has a reply subject of its own, so a late answer to an earlier request
    (its expiry) cannot end a later one; messages it delivers late are kept for the next fetch,
    never dropped (a cumulative ack past one would settle it unseen)."""

    def __init__(self, client: Client, js: JetStreamContext, stream: str, durable: str) -> None:
        self._client = client
        self._js = js
        self._stream = stream
        self._durable = durable
        self._next = NEXT_MESSAGES.format(stream=stream, durable=durable)
        self._inbox = client.new_inbox()
        self._requests = 0
        self._waiting_on = ""  # the reply subject of the request a fetch waits on
        self._ended_with: str | None = None  # the status that ended that request
        self._ending = ""  # and the server's words for it
        self._arrived: list[Msg] = []
        self._arrival = asyncio.Event()
        self._subscription: Subscription | None = None

    async def subscribe(self) -> None:
        self._subscription = await self._client.subscribe(f"{self._inbox}.*", cb=self._arrive)

    async def _arrive(self, message: Msg) -> None:
        headers = message.headers or {}
        status = headers.get(STATUS_HEADER)
        if status is None:
            self._arrived.append(message)
        elif status == HEARTBEAT or message.subject != self._waiting_on:
            return
        else:
            self._ended_with, self._ending = status, headers.get("Description", "")
        self._arrival.set()

    async def fetch(self, batch: int, wait: float) -> list[Delivery]:
        """Up to `batch` messages; returns as soon as any are available, [] after `wait`.

        As nats-py's fetch: first a request that ends once nothing more is there, then, if it
        brought nothing, one that lingers until a message comes or the time is up."""
        deadline = asyncio.get_running_loop().time() + wait
        lingering = False
        while not self._arrived:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            await self._request(batch, remaining, no_wait=not lingering)
            await self._answered(batch, deadline)
            if self._ended_with is not None and self._ended_with not in REQUEST_ENDED:
                # 503: no JetStream answers (a leader being elected); others: refused outright.
                raise BusUnavailable(f"pull request: {self._ended_with} {self._ending}")
            lingering = True
        messages, self._arrived = self._arrived[:batch], self._arrived[batch:]
        deliveries: list[Delivery] = []
        async for part in in_slices(messages):
            deliveries.extend(_delivery(message) for message in part)
        return deliveries

    async def _request(self, batch: int, seconds: float, *, no_wait: bool) -> None:
        self._requests += 1
        self._waiting_on, self._ended_with = f"{self._inbox}.{self._requests}", None
        request: dict[str, Any] = {"batch": batch, "expires": max(1, int(seconds * 1e9) - 100_000)}
        if no_wait:
            request["no_wait"] = True
        try:
            await self._client.publish(self._next, json.dumps(request).encode(),
                                       reply=self._waiting_on)
        except (ConnectionClosedError, NoServersError) as error:
            raise BusUnavailable(str(error)) from error

    async def _answered(self, batch: int, deadline: float) -> None:
        """Until `batch` messages are here, the request is ended, or the deadline."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while len(self._arrived) < batch and self._ended_with is None:
                    self._arrival.clear()
                    await self._arrival.wait()

    async def progress(self) -> ConsumerProgress:
        """The server's view: a filtered consumer's only gap-free position is its ack floor."""
        try:
            info = await self._js.consumer_info(self._stream, self._durable)
        except (ConnectionClosedError, NoServersError, ServiceUnavailableError,
                NatsTimeout, TimeoutError) as error:
            raise BusUnavailable(str(error)) from error
        return ConsumerProgress(
            acked_through=int(info.ack_floor.stream_seq if info.ack_floor else 0),
            outstanding=int(info.num_pending or 0) + int(info.num_ack_pending or 0),
        )

    async def close(self) -> None:
        if self._subscription is None:
            return
        try:
            await self._subscription.unsubscribe()
        except Exception as error:  # closing after a lost connection is not an error here
            log.debug("unsubscribe failed: %s", error)


def _delivery(message: Msg) -> Delivery:
    stream_sequence, delivered_count = positions(message)
    return Delivery(
        payload=message.data,
        headers=dict(message.headers or {}),
        stream_sequence=stream_sequence,
        delivered_count=delivered_count,
        _msg=message,
    )


def positions(message: Msg) -> tuple[int, int]:
    """(stream sequence, times delivered) from the message's ack subject,
    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`.
    nats-py's `metadata` also builds a timestamp and two dataclasses per message: a tenth of
    the projector's CPU. Any other form of the subject (a domain's) is left to it."""
    tokens = (message.reply or "").split(".")
    if len(tokens) == ACK_SUBJECT_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5]), int(tokens[4])
    metadata = message.metadata
    return metadata.sequence.stream, metadata.num_delivered


def _partitioning(count: int) -> SubjectTransform | None:
    destination = transform_destination(count)
    return SubjectTransform(src=FACT_SUBJECT, dest=destination) if destination else None


def servers(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222`: every node of a cluster, so a new connection made while
    one node is down still finds the others."""
    return [server.strip() for server in url.split(",") if server.strip()]


async def reachable(url: str, connect_timeout: float = 2.0) -> bool:
    """Whether a NATS server answers at `url` (readiness probes)."""
    try:
        client = await nats.connect(
            servers(url),
            connect_timeout=connect_timeout,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
    except Exception:
        return False
    await client.close()
    return True


class Bus:
    def __init__(self, client: Client, stream: str, max_in_flight: int) -> None:
        self._client = client
        self._stream = stream
        self._js = client.jetstream(publish_async_max_pending=max_in_flight)
        self._atomic = False  # whether the stream takes atomic batches: known once ensured

    @classmethod
    async def connect(
        cls, url: str, *, stream: str, name: str, max_in_flight: int = 1000
    ) -> Bus:
        """Connect with endless reconnects; a restarted nats-server is picked up again."""

        async def on_disconnect() -> None:
            log.warning("%s: disconnected from NATS", name)

        async def on_reconnect() -> None:
            log.warning("%s: reconnected to NATS", name)

        async def on_error(error: Exception) -> None:
            log.warning("%s: NATS error: %s", name, error)

        try:
            client = await nats.connect(
                servers(url),
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=3,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
            )
        except (NoServersError, OSError, NatsTimeout, TimeoutError) as error:
            raise BusUnavailable(str(error)) from error
        return cls(client, stream, max_in_flight)

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected)

    async def ensure_stream(
        self, *, duplicate_window: float, replicas: int | None = None,
        partitions: int | None = None,
    ) -> None:
        """File storage, everything under `gatherly.>`; the duplicate window dedups republishes.

        `replicas` None keeps an existing stream's replica count (an R3 stream on a cluster must
        not be scaled down by a process started without the setting) and creates one with 1.
        `partitions` None keeps an existing stream's partitioning and creates it whole; a count
        that differs from the stream's is applied only while the stream is empty, and refused
        (PartitionMismatch) once it holds facts (docs/adr/0005)."""
        config = StreamConfig(
            name=self._stream,
            subjects=SUBJECTS,
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            duplicate_window=duplicate_window,
            allow_atomic=True,
        )
        try:
            info = await self._js.stream_info(self._stream)
        except NotFoundError:
            config.num_replicas = replicas or 1
            config.subject_transform = _partitioning(partitions or 1)
            self._atomic = bool((await self._js.add_stream(config)).config.allow_atomic)
            return
        config.num_replicas = replicas or info.config.num_replicas or 1
        transform = info.config.subject_transform
        current = partition_count(transform.dest if transform else None)
        wanted = partitions or current
        if wanted != current and info.state.last_seq > 0:
            raise PartitionMismatch(
                f"stream {self._stream} holds facts in {current} partition(s), the settings ask"
                f" for {wanted}; changing the count is a deliberate operation (docs/adr/0005)"
            )
        config.subject_transform = _partitioning(wanted)
        # A server older than 2.12 ignores `allow_atomic`: its streams take messages one by one.
        self._atomic = bool((await self._js.update_stream(config)).config.allow_atomic)

    async def partitions(self) -> int:
        """How many partitions the stream's subject transform makes (1: none)."""
        transform = (await self._js.stream_info(self._stream)).config.subject_transform
        return partition_count(transform.dest if transform else None)

    async def last_sequence_of(self, subject: str) -> int:
        """The stream sequence of the last message on `subject` (wildcards allowed); 0: none."""
        try:
            return int((await self._js.get_last_msg(self._stream, subject)).seq or 0)
        except NotFoundError:
            return 0

    async def delete_stream(self) -> None:
        """Drop the stream and everything on it (tests, and a deliberate fresh start)."""
        with contextlib.suppress(NotFoundError):
            await self._js.delete_stream(self._stream)

    async def last_sequence(self) -> int:
        info = await self._js.stream_info(self._stream)
        return int(info.state.last_seq)

    async def publish_pipelined(
        self, messages: Sequence[OutgoingMessage], *, ack_timeout: float
    ) -> int:
        """Publish in order; return how many, from the start, were acknowledged by the stream.
        Anything after the first failure must be published again.

        In atomic batches where the stream takes them: with `sync_interval: always` each message
        published alone costs the server an fsync, which capped the relay near 1,100 facts/s and
        cost nats-server ~200 µs of CPU per fact (docs/benchmarks.md). A batch holding an id the
        stream already has is refused whole; it is then published message by message, and the
        duplicate window drops the copies as it always did."""
        if not self._atomic:
            return await self._publish_each(messages, ack_timeout)
        acknowledged = 0
        for start in range(0, len(messages), ATOMIC_BATCH_MAX):
            batch = messages[start:start + ATOMIC_BATCH_MAX]
            stored = await self._publish_batch(batch, ack_timeout)
            if not stored:
                stored = await self._publish_each(batch, ack_timeout)
            acknowledged += stored
            if stored < len(batch):
                break
        return acknowledged

    async def _publish_batch(self, batch: Sequence[OutgoingMessage], ack_timeout: float) -> int:
        """One atomic batch: len(batch) when the stream committed it, else 0."""
        batch_id = self._client.new_inbox().rsplit(".", 1)[-1]
        headers = [{MSG_ID_HEADER: message.message_id, **message.headers, BATCH_ID: batch_id,
                    BATCH_SEQUENCE: str(number)} for number, message in enumerate(batch, start=1)]
        headers[-1][BATCH_COMMIT] = "1"
        *staged, commit = batch
        try:
            for message, header in zip(staged, headers, strict=False):
                await self._client.publish(message.subject, message.payload, headers=header)
            reply = await self._client.request(
                commit.subject, commit.payload, timeout=ack_timeout, headers=headers[-1])
        except (ConnectionClosedError, NoServersError, NoRespondersError, NatsTimeout,
                TimeoutError) as error:
            log.warning("atomic batch of %d not acknowledged: %s", len(batch), error)
            return 0
        answer = json.loads(reply.data)
        if "error" in answer or answer.get("count") != len(batch):
            log.info("atomic batch of %d refused (%s): publishing it message by message",
                     len(batch), answer.get("error", answer))
            return 0
        return len(batch)

    async def _publish_each(self, messages: Sequence[OutgoingMessage], ack_timeout: float) -> int:
        """Pipelined, one acknowledgement per message."""
        futures: list[asyncio.Future[Any]] = []
        try:
            for message in messages:
                headers = {MSG_ID_HEADER: message.message_id, **message.headers}
                futures.append(
                    await self._js.publish_async(
                        message.subject, message.payload, headers=headers, wait_stall=ack_timeout
                    )
                )
        except Exception as error:
            log.warning("publish stalled after %d messages: %s", len(futures), error)
        if not futures:
            return 0
        done, pending = await asyncio.wait(futures, timeout=ack_timeout)
        for future in pending:
            future.cancel()
        acknowledged = 0
        for future in futures:
            if future not in done or future.cancelled() or future.exception() is not None:
                break
            acknowledged += 1
        return acknowledged

    async def pull_consumer(
        self,
        durable: str,
        *,
        start_sequence: int,
        ack_wait: float,
        max_ack_pending: int,
        filter_subject: str | list[str] = "gatherly.>",
        cumulative_acks: bool = False,
    ) -> PullConsumer:
        """A durable pull consumer positioned at `start_sequence`.

        The consumer's own state is disposable: the consumer's database holds the truth, so the
        durable is recreated at the position that database says. With `cumulative_acks`, acking
        a message also acknowledges every earlier message of the consumer (one ack settles a
        batch); a nak or term still concerns only its own message.
        """
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self._stream, durable)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.ALL if cumulative_acks else AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start_sequence),
            ack_wait=ack_wait,
            max_ack_pending=max_ack_pending,
            **_filter(filter_subject),
        )
        await self._js.add_consumer(self._stream, config)
        consumer = PullConsumer(self._client, self._js, self._stream, durable)
        await consumer.subscribe()
        return consumer

    async def close(self) -> None:
        """Flush and close. Not `drain()`: it waits on pull subscriptions' queues, which fetch
        never marks done, and every publish this module makes has already been awaited."""
        if self._client.is_closed:
            return
        with contextlib.suppress(Exception):  # flushing a broken connection is best effort
            await self._client.flush(timeout=1)
        await self._client.close()


def _filter(subjects: str | list[str]) -> dict[str, Any]:
    """A consumer's filter: one subject, or several (NATS >= 2.10)."""
    if isinstance(subjects, str) or len(subjects) == 1:
        return {"filter_subject": subjects if isinstance(subjects, str) else subjects[0]}
    return {"filter_subjects": subjects}
