"""Batch ingestion of views and reactions: facts per second through the engagement app, as a
ratio to raw asyncpg COPY of the same number of rows into a similar table, same server, same run.

By default the app runs under uvicorn in its own process and is driven over loopback HTTP (no
gateway: the service, its validation, planning, event append and read-model updates).
`--gateway` runs the whole system (`gatherly up`: Traefik, forwardAuth with a community key, the
relay and projections consuming what the batches write) and posts through the gateway, as the
issue asks; `--in-process` drives the app through httpx's ASGI transport. Every path writes
1,000-fact batches, one transaction each; the baseline COPYs 1,000-row chunks, one each, into the
same Postgres.

Run: `.venv/bin/python -m bench.engagement_batch [batches] [--gateway|--in-process]`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from bench.gateway_throughput import community_key
from bench.system import RunningSystem, cpu_by_component, free_ports
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.nats_metrics import JSZ_DETAILS
from gatherly.settings import Settings, to_libpq_url
from services.engagement.app import create_app

BATCH = 1000
CONCURRENCY = 2
HEADERS = {"X-Gatherly-Community": "bench", "X-Gatherly-Scopes": "read,write"}
ITEMS = 20
# The consumers of every fact whose backlog says whether the pipeline has caught up.
DRAINED_CONSUMERS = ("kpi", "webhooks")
JSON = {"Content-Type": "application/json"}


def app_from_env() -> FastAPI:
    """uvicorn's factory: the app configured from GATHERLY_* like any deployed service."""
    return create_app(Settings())


def batches(content_ids: list[str], count: int) -> list[dict[str, Any]]:
    """Seven views and three reactions in every ten facts, every reaction a new one."""
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    bodies = []
    for _ in range(count):
        items: list[dict[str, Any]] = []
        for i in range(BATCH):
            content = content_ids[i % len(content_ids)]
            if i % 10 < 7:
                items.append({"op": "view", "content_id": content, "viewed_at": at,
                              **({"member_id": str(uuid.uuid4())} if i % 2 else {})})
            else:
                items.append({"op": "add_reaction", "content_id": content, "kind": "like",
                              "member_id": str(uuid.uuid4()), "at": at})
        bodies.append({"items": items})
    return bodies


async def through_app(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], community: str = "bench"
) -> float:
    """Facts per second, CONCURRENCY batches in flight. The bodies are encoded before the clock
    starts, as the baseline's rows are prepared before its COPY: the load generator shares the
    2 cores with what it measures, and encoding a 1,000-item body cost it about 1.3 µs a fact."""
    queue = [json.dumps(body).encode() for body in bodies]
    recorded = 0

    async def worker() -> None:
        nonlocal recorded
        while queue:
            body = queue.pop()
            response = await client.post(f"/v1/communities/{community}/engagement/batch",
                                         content=body, headers=JSON)
            response.raise_for_status()
            recorded += int(response.json()["recorded"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    assert recorded == BATCH * len(bodies), recorded
    return recorded / elapsed


async def raw_copy(url: str, rows: int) -> float:
    """Rows per second: asyncpg COPY of event-shaped rows, 1,000 per COPY, CONCURRENCY at once."""
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS public.raw_facts (id uuid PRIMARY KEY, stream_id text,"
        " community_id text, type text, version int, occurred_at timestamptz, data jsonb)")
    await conn.close()
    now = datetime.now(UTC)
    chunks = [
        [(uuid.uuid4(), str(uuid.uuid4()), "bench", "gatherly.content.viewed", 1, now,
          json.dumps({"content_id": str(uuid.uuid4()), "channel": "telegram", "count": 1}))
         for _ in range(BATCH)]
        for _ in range(rows // BATCH)
    ]
    pool = await asyncpg.create_pool(url, min_size=CONCURRENCY, max_size=CONCURRENCY)
    assert pool is not None

    async def worker() -> None:
        while chunks:
            chunk = chunks.pop()
            async with pool.acquire() as conn:
                await conn.copy_records_to_table("raw_facts", records=chunk, schema_name="public")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return rows / elapsed


async def publish_items(client: httpx.AsyncClient, community: str = "bench") -> list[str]:
    ids = []
    for _ in range(ITEMS):
        response = await client.post(f"/v1/communities/{community}/content", json={
            "channel": "telegram", "kind": "post",
            "published_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()})
        response.raise_for_status()
        ids.append(str(response.json()["id"]))
    return ids


async def run(database_url: str, count: int, port: int | None) -> None:
    """Drive the app at `port` (a uvicorn process), or in-process when `port` is None."""
    settings = Settings(database_url=database_url)
    await asyncio.to_thread(migrate, settings.database, "engagement",
                            "services.engagement.migrations")
    if port is None:
        app = create_app(settings)
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
        base = "http://engagement"
        mode = "in-process ASGI (httpx.ASGITransport)"
    else:
        transport = httpx.AsyncHTTPTransport()
        base = f"http://127.0.0.1:{port}"
        mode = "uvicorn process over loopback HTTP (no gateway)"
    async with httpx.AsyncClient(transport=transport, base_url=base, headers=HEADERS,
                                 timeout=60) as client:
        await _wait_ready(client)
        bodies = batches(await publish_items(client), count + 2)
        await through_app(client, bodies[:2])  # warm-up: connections, caches
        app_rate = await through_app(client, bodies[2:])
    copy_rate = await raw_copy(to_libpq_url(database_url), count * BATCH)
    report(count, mode, app_rate, copy_rate)


def report(count: int, mode: str, app_rate: float, copy_rate: float) -> None:
    print(f"engagement batch ingestion, {count} batches of {BATCH} facts "
          f"(70% views, 30% new reactions), {CONCURRENCY} in flight; app: {mode}")
    print(f"  through the app : {app_rate:10.0f} facts/s")
    print(f"  raw asyncpg COPY: {copy_rate:10.0f} rows/s")
    print(f"  ratio           : {app_rate / copy_rate:10.2f}  (goal >= 0.25)")


async def run_through_gateway(system: RunningSystem, count: int) -> None:
    community, secret = community_key(system)
    async with httpx.AsyncClient(base_url=system.gateway, timeout=60,
                                 headers={"Authorization": f"Bearer {secret}"}) as client:
        bodies = batches(await publish_items(client, community), count + 2)
        await through_app(client, bodies[:2], community)  # warm-up: connections, caches
        await drained(system)
        assert system.process is not None
        on_stream_before = (await pipeline(system))[0]
        cpu_before, client_before = cpu_by_component(system.process.pid), time.process_time()
        app_rate = await through_app(client, bodies[2:], community)
        cpu = cpu_by_component(system.process.pid)
        cpu["load generator (this process)"] = time.process_time() - client_before
        posted_at, on_stream = time.monotonic(), (await pipeline(system))[0] - on_stream_before
        await drained(system)
        drain_seconds = time.monotonic() - posted_at
        cpu_drained = cpu_by_component(system.process.pid)
    copy_rate = await raw_copy(system.postgres_url, count * BATCH)
    report(count, "gatherly up, through Traefik + forwardAuth (community key)", app_rate,
           copy_rate)
    print(f"  CPU per fact while posting (µs; {os.cpu_count()} cores), by process:")
    print_cpu(cpu_before, cpu, count * BATCH)
    # The relay and the consumers may still be behind when the posting ends: per fact, their
    # CPU counts only once they have handled every fact.
    print(f"  on the stream when the posting ended: {on_stream} of {count * BATCH} facts;"
          f" relay and consumers caught up {drain_seconds:.1f} s later")
    print("  CPU per fact from the posting's start until caught up (µs), by process:")
    print_cpu(cpu_before, cpu_drained, count * BATCH)


def print_cpu(before: dict[str, float], after: dict[str, float], facts: int) -> None:
    spent = {name: seconds - before.get(name, 0.0) for name, seconds in after.items()}
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):  # most first
        if seconds > 0:
            print(f"    {seconds / facts * 1e6:7.1f}  {name}")


async def pipeline(system: RunningSystem) -> tuple[int, int]:
    """(facts on the stream, facts the KPI and webhooks consumers have not yet acknowledged),
    from the embedded NATS's monitoring endpoint."""
    port = system.env["GATHERLY_NATS_MONITOR_PORT"]
    async with httpx.AsyncClient(timeout=5) as client:
        jsz = (await client.get(f"http://127.0.0.1:{port}/jsz", params=JSZ_DETAILS)).json()
    streams = [s for a in jsz.get("account_details") or [] for s in a.get("stream_detail") or []]
    on_stream = sum(int(s["state"]["last_seq"]) for s in streams)
    behind = sum(int(c.get("num_pending", 0)) + int(c.get("num_ack_pending", 0))
                 for s in streams for c in s.get("consumer_detail") or []
                 if c["name"] in DRAINED_CONSUMERS)
    return on_stream, behind


async def drained(system: RunningSystem) -> None:
    """Until the relay has published everything (the stream stops growing for a second) and
    the KPI and webhooks consumers have acknowledged all of it; ten minutes at most."""
    last, steady_since = -1, time.monotonic()
    async with asyncio.timeout(600):
        while True:
            on_stream, behind = await pipeline(system)
            if on_stream != last:
                last, steady_since = on_stream, time.monotonic()
            elif behind == 0 and time.monotonic() - steady_since >= 1.0:
                return
            await asyncio.sleep(0.1)


async def _wait_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the engagement app did not start")
        await asyncio.sleep(0.1)


def measure(database_url: str, count: int, in_process: bool) -> None:
    if in_process:
        asyncio.run(run(database_url, count, None))
        return
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.engagement_batch:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        env={**os.environ, "GATHERLY_DATABASE_URL": database_url},
    )
    try:
        asyncio.run(run(database_url, count, port))
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 20
    in_process = "--in-process" in sys.argv
    if "--gateway" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp, RunningSystem(Path(tmp)) as system:
            asyncio.run(run_through_gateway(system, count))
        return
    external = os.environ.get("GATHERLY_DATABASE_URL")
    if external:
        measure(external, count, in_process)
        return
    with tempfile.TemporaryDirectory() as tmp:
        (port,) = free_ports(1)
        postgres = EmbeddedPostgres(Path(tmp) / "pg", port, Path(tmp) / "pg.log")
        postgres.start()
        try:
            asyncio.run(_create_database(postgres.url("postgres")))
            measure(postgres.url("bench"), count, in_process)
        finally:
            postgres.stop()


async def _create_database(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE DATABASE bench")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
