"""Helpers the tests share: reading the stream back, running kernel loops in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from gatherly.bus import Bus, Delivery
from gatherly.envelope import DomainEvent, Envelope, from_json
from gatherly.settings import Settings


async def stream_deliveries(settings: Settings) -> list[Delivery]:
    """Every message on the test's stream, in stream order."""
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="reader")
    try:
        total = await bus.last_sequence()
        consumer = await bus.pull_consumer(
            "test-reader", start_sequence=1, ack_wait=30, max_ack_pending=100_000
        )
        deliveries: list[Delivery] = []
        while len(deliveries) < total:
            batch = await consumer.fetch(1000, wait=2.0)
            if not batch:
                break
            deliveries.extend(batch)
        return deliveries
    finally:
        await bus.close()


async def stream_envelopes(settings: Settings) -> list[Envelope]:
    return [from_json(d.payload) for d in await stream_deliveries(settings)]


@contextlib.asynccontextmanager
async def running(loop_owner: object) -> AsyncIterator[asyncio.Task[None]]:
    """Run `loop_owner.run()` (a relay or projection runner) for the duration of the block."""
    task = asyncio.create_task(loop_owner.run())  # type: ignore[attr-defined]
    try:
        yield task
    finally:
        loop_owner.stopping.set()  # type: ignore[attr-defined]
        await asyncio.wait_for(task, 15)


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 15.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def joined(channel: str = "telegram") -> DomainEvent:
    now = datetime.now(UTC)
    data = {"channel": channel, "joined_at": now.isoformat()}
    return DomainEvent("gatherly.member.joined", data, now)


def left() -> DomainEvent:
    now = datetime.now(UTC)
    return DomainEvent("gatherly.member.left", {"left_at": now.isoformat()}, now)
