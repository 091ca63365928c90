"""KPI projection throughput: facts/s through the real ProjectionRunner (fetch, fold, write,
checkpoint, ack) as a ratio to raw nats-py fetch + ack of the same messages, in the same run: the
issue's baseline is nats-py's own pull subscription `fetch` and `Msg.ack`, not the kernel's bus.
The raw loop acks every message; the projection settles a batch with one cumulative ack, so the
ratio to a raw loop that acks that way too is printed beside it, and so is the ratio to a loop
on the kernel's own fetch (gatherly/bus.py gathers a pull request's messages in one callback,
cheaper than nats-py's fetch: a stricter baseline).

`python -m bench.kpi_projection [facts] [zones] [--chronological]` starts its own embedded
Postgres and NATS (no fsync per write: this measures the consumer, not the disk) and uses the
oracle's history in its random arrival order: facts of 440 days in any order, the worst case for
the active-days write (almost every new active day lands between two stored ones). With
`--chronological` the same history arrives as a live community's does, in time order (each
aggregate's facts still in version order, so a fact older than its predecessor comes late).
The community's KPIs are kept in `zones` time zones (default 1, as for any community whose KPIs
were asked for once; 0 measures the fact tables alone): each zone's rollups are written by the
projection too."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig

from gatherly.bus import Bus
from gatherly.collector import tune_collector
from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.projection import ProjectionRunner
from gatherly.settings import Settings
from services.kpi.projections import KpiProjection
from services.kpi.queries.zones import ensure_zone
from tests.conftest import free_port
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_support import publish


async def raw_fetch_ack(settings: Settings, total: int, *, cumulative: bool = False) -> float:
    """nats-py's pull subscription: fetch + ack of every message; `cumulative`: one ack per
    batch settles it all, as the projection acks."""
    name = "raw-cumulative" if cumulative else "raw"
    client = await nats.connect(settings.nats, name=name)
    config = ConsumerConfig(ack_policy=AckPolicy.ALL if cumulative else AckPolicy.EXPLICIT,
                            ack_wait=30, max_ack_pending=settings.projection_batch_size * 4)
    subscription = await client.jetstream().pull_subscribe(
        "gatherly.>", durable=name, stream=settings.stream_name, config=config)
    started, seen = time.perf_counter(), 0
    while seen < total:
        batch = await subscription.fetch(settings.projection_batch_size, timeout=2.0)
        for message in batch[-1:] if cumulative else batch:
            await message.ack()
        seen += len(batch)
    elapsed = time.perf_counter() - started
    await client.close()
    return total / elapsed


async def bus_fetch_ack(settings: Settings, total: int) -> float:
    """The kernel's own fetch and one cumulative ack per batch, as the runner settles."""
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="bus-cumulative")
    consumer = await bus.pull_consumer("bus-cumulative", start_sequence=1, ack_wait=30,
                                       max_ack_pending=settings.projection_batch_size * 4,
                                       cumulative_acks=True)
    started, seen = time.perf_counter(), 0
    while seen < total:
        batch = await consumer.fetch(settings.projection_batch_size, wait=2.0)
        if batch:
            await batch[-1].ack()
        seen += len(batch)
    elapsed = time.perf_counter() - started
    await bus.close()
    return total / elapsed


async def projected(settings: Settings, total: int) -> float:
    engine = create_engine(settings.database, "kpi", pool_size=2)
    runner = ProjectionRunner(settings, KpiProjection(), engine)
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    while runner.applied < total:  # noqa: ASYNC110 (the runner exposes a counter, no event)
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    runner.stopping.set()
    await task
    await engine.dispose()
    return total / elapsed


COMMUNITY = "oracle"  # the generated history's
ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")


def chronological(facts: list[Envelope]) -> list[Envelope]:
    """The facts in time order, each aggregate's in version order: a fact whose time is before
    its predecessor's arrives just after that predecessor."""
    latest: dict[str, datetime] = {}
    arrival: list[tuple[datetime, int, Envelope]] = []
    for position, fact in enumerate(sorted(facts, key=lambda f: (f.subject, f.sequence))):
        at = max(fact.time, latest.get(fact.subject, fact.time))
        latest[fact.subject] = at
        arrival.append((at, position, fact))
    return [fact for _, _, fact in sorted(arrival, key=lambda a: a[:2])]


async def keep_zones(settings: Settings, zones: int) -> None:
    engine = create_engine(settings.database, "kpi", pool_size=1)
    try:
        for zone in ZONES[:zones]:
            await ensure_zone(engine, COMMUNITY, zone)
    finally:
        await engine.dispose()


async def run(root: Path, limit: int, zones: int, in_time_order: bool) -> None:
    pg = EmbeddedPostgres(root / "pg", free_port(), root / "pg.log")
    nats = EmbeddedNats(root / "nats", free_port(), root / "nats.log", sync_always=False)
    pg.start()
    nats.start()
    try:
        conn = await asyncpg.connect(pg.url("postgres"))
        await conn.execute("CREATE DATABASE bench")
        await conn.close()
        settings = Settings(database_url=pg.url("bench"), nats_url=nats.url,
                            stream_name=f"B{uuid.uuid4().hex[:8].upper()}")
        await asyncio.to_thread(migrate, settings.database, "kpi", "services.kpi.migrations")
        await keep_zones(settings, zones)
        bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="bench")
        await bus.ensure_stream(duplicate_window=60)
        await bus.close()
        history = generate(seed=1)
        facts = (chronological(history) if in_time_order else history)[:limit]
        await publish(settings, facts)
        total = len(facts)
        # A projector process holds no history: collecting over it would slow both loops.
        del facts
        tune_collector()  # as `gatherly project` does, for both loops alike
        raw = await raw_fetch_ack(settings, total)
        cumulative = await raw_fetch_ack(settings, total, cumulative=True)
        kernel = await bus_fetch_ack(settings, total)
        kpi = await projected(settings, total)
        print(f"{total} facts: raw nats-py fetch+ack {raw:,.0f}/s, KPI projection {kpi:,.0f}/s,"
              f" ratio {kpi / raw:.2f} (goal >= 0.6); rollups in {zones} zone(s);"
              f" {'time' if in_time_order else 'random'} order")
        print(f"  against raw nats-py fetch + one cumulative ack per batch ({cumulative:,.0f}/s,"
              f" the projection's way of acking): {kpi / cumulative:.2f}")
        print(f"  against the kernel's own fetch + one cumulative ack per batch"
              f" ({kernel:,.0f}/s): {kpi / kernel:.2f}")
    finally:
        nats.stop()
        pg.stop()


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--chronological"]
    limit = int(args[0]) if args else 100_000
    zones = int(args[1]) if len(args) > 1 else 1
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(run(Path(root), limit, zones, "--chronological" in sys.argv))


if __name__ == "__main__":
    main()
