"""Webhook delivery: deliveries per second to fast local receivers, and the delay from a fact's
commit to its arrival at the receiver (p50, p99), through the whole path (event store → relay →
NATS → fan-out → sender → signed POST).

Baseline, same run, same receiver: raw httpx POSTs of the same bodies, one in flight per endpoint
(what the sender's per-endpoint order allows), unsigned and unlogged.

Run: `.venv/bin/python -m bench.webhooks_delivery [facts] [endpoints]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from aiohttp import web

from bench.system import free_ports
from gatherly.bus import Bus
from gatherly.db import create_engine
from gatherly.envelope import DomainEvent, utc_now
from gatherly.eventstore import EventStore
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.outbox import Relay
from gatherly.projection import ProjectionRunner
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings
from services.webhooks import views
from services.webhooks.delivery import DeliveryWorker
from services.webhooks.domain import new_secret
from services.webhooks.projection import WebhooksProjection


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.expected = 0
        self.all_in = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrivals.append(time.time())
        if len(self.arrivals) >= self.expected:
            self.all_in.set()
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def receiving(port: int, receiver: Receiver) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post("/{endpoint}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def joined() -> DomainEvent:
    now = utc_now()
    return DomainEvent("gatherly.member.joined", {"channel": "vk", "joined_at": now.isoformat()},
                       now)


async def baseline(port: int, facts: int, endpoints: int) -> float:
    body = ('{"specversion":"1.0","type":"gatherly.member.joined","data":{"channel":"vk"}}'
            * 3)
    async with httpx.AsyncClient(trust_env=False) as client:
        async def one_endpoint(index: int) -> None:
            for _ in range(facts):
                await client.post(f"http://127.0.0.1:{port}/e{index}", content=body)

        started = time.perf_counter()
        await asyncio.gather(*(one_endpoint(i) for i in range(endpoints)))
        return facts * endpoints / (time.perf_counter() - started)


async def run(settings: Settings, port: int, facts: int, endpoints: int) -> None:
    for schema in ("members", "webhooks"):
        await asyncio.to_thread(migrate, settings.database, schema, SCHEMAS[schema])
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="bench")
    await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
    members, hooks = (create_engine(settings.database, s, pool_size=8)
                      for s in ("members", "webhooks"))
    async with hooks.begin() as conn:
        for index in range(endpoints):
            await views.insert(conn, "bench", str(uuid.uuid4()), f"http://127.0.0.1:{port}/e{index}",
                               ["gatherly.member.*"], "", True, new_secret())
    receiver, store = Receiver(), EventStore("/gatherly/members")
    loops = [Relay(settings, "members", members),
             ProjectionRunner(settings, WebhooksProjection(), hooks),
             DeliveryWorker(settings, hooks)]
    async with receiving(port, receiver):
        raw = await baseline(port, facts, endpoints)
        receiver.arrivals.clear()
        receiver.expected = facts * endpoints
        tasks = [asyncio.create_task(loop.run()) for loop in loops]  # type: ignore[attr-defined]
        committed: list[float] = []
        started = time.perf_counter()
        for _ in range(facts):
            async with members.begin() as conn:
                await store.append(conn, stream_id=str(uuid.uuid4()), community_id="bench",
                                   expected_version=0, events=[joined()])
            committed.append(time.time())
            await asyncio.sleep(0.002)
        await receiver.all_in.wait()
        elapsed = time.perf_counter() - started
        for loop in loops:
            loop.stopping.set()  # type: ignore[attr-defined]
        await asyncio.gather(*tasks)
    per_endpoint = [sorted(receiver.arrivals)[i::endpoints] for i in range(endpoints)]
    delays = sorted((arrival - sent) * 1000 for arrivals in per_endpoint
                    for arrival, sent in zip(arrivals, committed, strict=False))
    rate = facts * endpoints / elapsed
    p50, p99 = statistics.quantiles(delays, n=100)[49], statistics.quantiles(delays, n=100)[98]
    print(f"{facts} facts x {endpoints} endpoints = {facts * endpoints} deliveries")
    print(f"webhooks pipeline: {rate:,.0f} deliveries/s over {elapsed:.1f} s")
    print(f"raw httpx POST, one in flight per endpoint: {raw:,.0f} requests/s")
    print(f"ratio: {rate / raw:.2f}")
    print(f"fact commit -> receiver: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    await bus.delete_stream()
    await bus.close()
    await members.dispose()
    await hooks.dispose()


def main() -> None:
    facts = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    endpoints = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    pg_port, nats_port, port = free_ports(3)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        postgres = EmbeddedPostgres(root / "pg", pg_port, root / "pg.log")
        nats = EmbeddedNats(root / "nats", nats_port, root / "nats.log")
        postgres.start()
        nats.start()
        try:
            settings = Settings(
                data_dir=root, database_url=postgres.url("postgres"), nats_url=nats.url,
                relay_poll_seconds=0.05, allow_http_webhooks=True, allow_loopback_webhooks=True,
                webhook_poll_seconds=0.05, stream_name="BENCHWH", projection_batch_size=200,
            )
            asyncio.run(run(settings, port, facts, endpoints))
        finally:
            nats.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
