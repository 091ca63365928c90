"""The pull consumer's fetch against a real JetStream: what it returns and when, and that a
message delivered is never lost to a fetch that has already returned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gatherly.bus import Bus, OutgoingMessage, PullConsumer
from gatherly.settings import Settings
from tests.helpers import eventually


def messages(first: int, count: int) -> list[OutgoingMessage]:
    return [OutgoingMessage("gatherly.c1.member.joined", b"{}", f"m{n}")
            for n in range(first, first + count)]


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="fetch-test")
    await bus.ensure_stream(duplicate_window=60)
    yield bus
    await bus.close()


async def consumer_of(bus: Bus) -> PullConsumer:
    return await bus.pull_consumer("fetch-test", start_sequence=1, ack_wait=30,
                                   max_ack_pending=4000, cumulative_acks=True)


async def test_a_fetch_returns_what_is_there_without_waiting_for_a_full_batch(bus: Bus) -> None:
    consumer = await consumer_of(bus)
    await bus.publish_pipelined(messages(0, 5), ack_timeout=5)
    started = time.monotonic()
    batch = await consumer.fetch(1000, wait=2.0)
    assert [d.stream_sequence for d in batch] == [1, 2, 3, 4, 5]
    assert time.monotonic() - started < 1.0


async def test_a_fetch_of_an_empty_consumer_returns_nothing_after_its_wait(bus: Bus) -> None:
    consumer = await consumer_of(bus)
    started = time.monotonic()
    assert await consumer.fetch(10, wait=0.5) == []
    assert 0.4 < time.monotonic() - started < 1.5


async def test_a_fetch_waits_for_a_message_published_while_it_waits(bus: Bus) -> None:
    consumer = await consumer_of(bus)

    async def publish_later() -> None:
        await asyncio.sleep(0.3)
        await bus.publish_pipelined(messages(0, 3), ack_timeout=5)

    later = asyncio.create_task(publish_later())
    batch = await consumer.fetch(10, wait=3.0)
    await later
    rest = await consumer.fetch(10, wait=0.5)
    assert sorted(d.stream_sequence for d in batch + rest) == [1, 2, 3]


async def test_messages_delivered_after_a_fetch_gave_up_come_with_the_next(bus: Bus) -> None:
    consumer = await consumer_of(bus)
    # The first request lingers on the server beyond this fetch's wait...
    assert await consumer.fetch(10, wait=0.05) == []
    await bus.publish_pipelined(messages(0, 4), ack_timeout=5)
    await asyncio.sleep(0.2)
    # ...whatever it delivers is handed out, not dropped: a cumulative ack would settle it.
    seen: list[int] = []
    while len(seen) < 4:
        batch = await consumer.fetch(10, wait=1.0)
        assert batch, f"only {seen} came"
        seen += [d.stream_sequence for d in batch]
    assert sorted(seen) == [1, 2, 3, 4]


async def test_a_fetch_of_many_takes_at_most_its_batch(bus: Bus) -> None:
    consumer = await consumer_of(bus)
    await bus.publish_pipelined(messages(0, 2500), ack_timeout=10)
    sizes: list[int] = []
    while sum(sizes) < 2500:
        batch = await consumer.fetch(1000, wait=1.0)
        assert batch
        sizes.append(len(batch))
        await batch[-1].ack()
    assert max(sizes) <= 1000

    # An ack is a publish the server applies on its own time, not before the next request.
    async def all_acked() -> bool:
        return (await consumer.progress()).acked_through == 2500

    await eventually(all_acked, within=5.0)


async def test_a_nakked_message_comes_again_with_its_delivery_counted(bus: Bus) -> None:
    consumer = await consumer_of(bus)
    await bus.publish_pipelined(messages(0, 2), ack_timeout=5)
    first = await consumer.fetch(10, wait=1.0)
    await first[0].ack()
    await first[1].nak(delay=0.1)
    again = await consumer.fetch(10, wait=2.0)
    assert [(d.stream_sequence, d.delivered_count) for d in again] == [(2, 2)]
