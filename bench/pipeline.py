"""The kernel's event pipeline against raw nats-py baselines, same servers, same run.

- relay: store → stream, vs raw `js.publish_async` with `Nats-Msg-Id` of the same payloads;
- projection: stream → Postgres, vs raw `fetch` + `ack`. The projection is the kernel's runner
  with the smallest useful read model (joins per community per day, one upsert per batch), so
  the ratio is the runner's own cost; the full KPI projection has its own bench
  (`bench.kpi_projection`).

Both servers are embedded ones started here, with the configuration `gatherly up` uses
(JetStream `sync_interval: always`). Run: `.venv/bin/python -m bench.pipeline [events]`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import nats
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.system import free_ports
from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.eventstore import EventStore
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.outbox import Relay
from gatherly.projection import ProjectionRunner
from gatherly.settings import Settings


class DailyJoins:
    """Joins per community per day: what the walking skeleton's KPI projection was."""

    name = "bench-daily-joins"
    schema = "kpi"
    single_event_types: frozenset[str] = frozenset()
    fact_types: frozenset[str] | None = None  # every fact
    durable_commits = True

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        counts = Counter((e.community_id, e.time.date()) for e in events)
        await conn.execute(
            text(
                "INSERT INTO bench_daily_joins AS d (community_id, day, joined)"
                " SELECT * FROM unnest(CAST(:c AS text[]), CAST(:d AS date[]), CAST(:j AS int[]))"
                " ON CONFLICT (community_id, day) DO UPDATE SET joined = d.joined + excluded.joined"
            ),
            {"c": [c for c, _ in counts], "d": [d for _, d in counts], "j": list(counts.values())},
        )

    async def reset(self, conn: AsyncConnection) -> None:
        await conn.execute(text("TRUNCATE bench_daily_joins"))


def member_joins(count: int) -> list[Envelope]:
    now = datetime.now(UTC)
    return [
        Envelope(
            id=str(uuid.uuid4()), source="/gatherly/members", type="gatherly.member.joined",
            subject=str(uuid.uuid4()), community_id=f"bench-{i % 50}", sequence=1, time=now,
            data={"channel": "telegram", "joined_at": now.isoformat()},
        )
        for i in range(count)
    ]


async def raw_publish(url: str, envelopes: list[Envelope]) -> float:
    """Messages per second: nats-py publish_async, bounded in flight, every ack awaited."""
    client = await nats.connect(url)
    js = client.jetstream(publish_async_max_pending=1000)
    await js.add_stream(name="RAWBENCH", subjects=["rawbench.>"], duplicate_window=3600)
    started = time.perf_counter()
    futures = [
        await js.publish_async(f"rawbench.{e.community_id}.member.joined", e.to_json(),
                               headers={"Nats-Msg-Id": e.id})
        for e in envelopes
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await js.delete_stream("RAWBENCH")
    await client.close()
    return len(envelopes) / elapsed


async def raw_fetch_ack(url: str, stream: str, count: int) -> float:
    """Messages per second: a durable pull consumer, fetch 500 at a time, ack each."""
    client = await nats.connect(url)
    js = client.jetstream()
    subscription = await js.pull_subscribe("gatherly.>", durable="rawbench", stream=stream)
    started, seen = time.perf_counter(), 0
    while seen < count:
        messages = await subscription.fetch(500, timeout=5)
        for message in messages:
            await message.ack()
        seen += len(messages)
    elapsed = time.perf_counter() - started
    await js.delete_consumer(stream, "rawbench")
    await client.close()
    return count / elapsed


async def wait_for(predicate: object, within: float = 300) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish")
        await asyncio.sleep(0.01)


async def measure(count: int, root: Path) -> dict[str, float]:
    pg_port, nats_port = free_ports(2)
    postgres = EmbeddedPostgres(root / "pg", pg_port, root / "pg.log")
    server = EmbeddedNats(root / "nats", nats_port, root / "nats.log")
    postgres.start()
    server.start()
    try:
        postgres.ensure_database("bench")
        settings = Settings(database_url=postgres.url("bench"), nats_url=server.url)
        for schema in ("members", "kpi"):
            package = f"services.{schema}.migrations"
            await asyncio.to_thread(migrate, settings.database, schema, package)
        envelopes = member_joins(count)
        results = {"raw publish_async": await raw_publish(server.url, envelopes)}

        members = create_engine(settings.database, "members")
        store = EventStore(source="/gatherly/members")
        for start in range(0, count, 1000):
            async with members.begin() as conn:
                await store.append_envelopes(conn, envelopes[start : start + 1000])
        relay = Relay(settings, "members", members)
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        await wait_for(lambda: relay.published >= count)
        results["relay"] = count / (time.perf_counter() - started)
        relay.stopping.set()
        await task
        await members.dispose()

        results["raw fetch+ack"] = await raw_fetch_ack(server.url, settings.stream_name, count)
        kpi = create_engine(settings.database, "kpi")
        async with kpi.begin() as conn:
            await conn.execute(text(
                "CREATE TABLE bench_daily_joins (community_id text, day date, joined int,"
                " PRIMARY KEY (community_id, day))"
            ))
        runner = ProjectionRunner(settings, DailyJoins(), kpi)
        started = time.perf_counter()
        task = asyncio.create_task(runner.run())
        await wait_for(lambda: runner.applied >= count)
        results["projection"] = count / (time.perf_counter() - started)
        runner.stopping.set()
        await task
        await kpi.dispose()
        return results
    finally:
        server.stop()
        postgres.stop()


def report(results: dict[str, float]) -> str:
    relay = results["relay"] / results["raw publish_async"]
    projection = results["projection"] / results["raw fetch+ack"]
    return "\n".join([
        *(f"{name:>20}: {rate:10,.0f} events/s" for name, rate in results.items()),
        f"{'relay ratio':>20}: {relay:10.2f}  (goal >= 0.6)",
        f"{'projection ratio':>20}: {projection:10.2f}  (goal >= 0.6)",
    ])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory(prefix="gatherly-bench-") as root:
        results = asyncio.run(measure(count, Path(root)))
    print(f"pipeline benchmark, {count:,} events")
    print(report(results))


if __name__ == "__main__":
    main()
