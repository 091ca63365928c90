"""Publishing to the stream against a real JetStream (sync_interval: always, as `gatherly up`):
a relay's batch goes in as one atomic batch, one fsync and one acknowledgement, and the
stream still keeps each message id once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gatherly.bus import ATOMIC_BATCH_MAX, BATCH_ID, Bus, Delivery, OutgoingMessage
from gatherly.settings import Settings


def messages(first: int, count: int, community: str = "c1") -> list[OutgoingMessage]:
    return [OutgoingMessage(f"gatherly.{community}.member.joined", f'{{"n":{n}}}'.encode(),
                            f"m{n}", {"traceparent": f"00-{n:032x}-{n + 1:016x}-01"})
            for n in range(first, first + count)]


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="publish-test")
    await bus.ensure_stream(duplicate_window=60)
    yield bus
    await bus.close()


async def everything_on(bus: Bus, count: int) -> list[Delivery]:
    consumer = await bus.pull_consumer("publish-test", start_sequence=1, ack_wait=30,
                                       max_ack_pending=10_000, cumulative_acks=True)
    seen: list[Delivery] = []
    while len(seen) < count:
        batch = await consumer.fetch(count, wait=2.0)
        assert batch, f"only {len(seen)} of {count} on the stream"
        seen += batch
    assert await consumer.fetch(count, wait=0.2) == []
    await consumer.close()
    return seen


async def test_a_batch_is_stored_as_one_atomic_batch(bus: Bus) -> None:
    assert await bus.publish_pipelined(messages(0, 500), ack_timeout=10) == 500
    stored = await everything_on(bus, 500)
    assert [d.stream_sequence for d in stored] == list(range(1, 501))
    # One commit for the 500: the server fsyncs and acknowledges once, not per message.
    assert len({d.headers.get(BATCH_ID) for d in stored}) == 1
    assert stored[0].headers[BATCH_ID]
    assert stored[7].headers["traceparent"] == messages(7, 1)[0].headers["traceparent"]
    assert stored[7].payload == b'{"n":7}'


async def test_more_than_a_batch_goes_in_several_in_order(bus: Bus) -> None:
    count = ATOMIC_BATCH_MAX * 2 + 300
    assert await bus.publish_pipelined(messages(0, count), ack_timeout=20) == count
    stored = await everything_on(bus, count)
    assert [d.payload for d in stored] == [m.payload for m in messages(0, count)]
    assert len({d.headers.get(BATCH_ID) for d in stored}) == 3


async def test_a_batch_published_again_is_acknowledged_and_stored_once(bus: Bus) -> None:
    """The relay's recovery: it publishes again from a checkpoint that lagged."""
    assert await bus.publish_pipelined(messages(0, 4), ack_timeout=10) == 4
    # The server refuses an atomic batch holding a known id: published one by one instead.
    assert await bus.publish_pipelined(messages(0, 4), ack_timeout=10) == 4
    assert await bus.publish_pipelined(messages(2, 5), ack_timeout=10) == 5
    stored = await everything_on(bus, 7)
    assert [d.payload for d in stored] == [m.payload for m in messages(0, 7)]
    assert [d.stream_sequence for d in stored] == list(range(1, 8))
    assert await bus.last_sequence() == 7
