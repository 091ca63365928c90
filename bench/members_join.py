"""Single joins per second, as a ratio to a bare FastAPI POST driven the same way in the same run.

Two modes:

- `gateway` (the issue's measure): the whole system from `gatherly up` — Traefik, the forwardAuth
  edge with a community API key, the members service under `gatherly serve`, Postgres — against a
  bare FastAPI app under uvicorn (a POST route that validates a similar body and does nothing
  else), both driven over loopback by the same aiohttp load generator, `CONCURRENCY` requests in
  flight for `SECONDS` each (bench.gateway_throughput's `rate`).
- `cpu`: where a join's CPU goes across the system: joins through the gateway as in `gateway`,
  with the CPU time of every process of `gatherly up` (Traefik, edge, members, relays,
  projectors, NATS, Postgres backends) read before and after, printed as ms per join.
- `in-process`: the members app and the bare app through httpx's ASGI transport, one request at
  a time. This is latency: every join waits for its own commit (fsync), so it shows the cost of
  the request path and its round trips, not what the service sustains.

A join is the whole command: body validation → profile checks → the list and profile rows
(whose unique index says whether the person is new) → `gatherly.member.joined` appended
(contract check, NOTIFY) → commit.

Run: `.venv/bin/python -m bench.members_join [gateway|cpu|in-process] [count]`
(default gateway; count is the in-process number of joins, default 2000).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from itertools import count as counter
from pathlib import Path

import aiohttp
import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from bench.gateway_throughput import CONCURRENCY, SECONDS, community_key, rate
from bench.members_common import BASE, HEADERS, members_database
from bench.system import RunningSystem, cpu_by_component, free_ports
from services.members.app import create_app


class Join(BaseModel):
    channel: str
    external_ref: str | None = None
    display_name: str | None = None
    email: str | None = None
    interests: list[str] | None = None


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/communities/{community_id}/members", status_code=201)
    async def join(community_id: str, body: Join) -> dict[str, str]:
        return {"channel": body.channel}

    return app


def body(i: int) -> dict[str, object]:
    return {"channel": "telegram", "external_ref": f"tg-{i}", "display_name": f"Member {i}",
            "email": f"member{i}@example.org", "interests": ["music"]}


async def joins_per_second(app: FastAPI, count: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://members",
                                 headers=HEADERS) as client:
        for i in range(50):  # warm-up: pools, caches, first-request imports
            (await client.post(BASE, json=body(-i - 1))).raise_for_status()
        start = time.perf_counter()
        for i in range(count):
            response = await client.post(BASE, json=body(i))
            if response.status_code != 201:
                raise AssertionError(f"{response.status_code}: {response.text}")
        return count / (time.perf_counter() - start)


async def in_process(count: int) -> None:
    async with members_database() as settings:
        bare = await joins_per_second(bare_app(), count)
        app = create_app(settings)
        members = await joins_per_second(app, count)
        await app.state.engine.dispose()
    print(f"members join, {count} joins, one at a time, in-process")
    print(f"  bare FastAPI POST        {bare:9.0f} requests/s")
    print(f"  members app (in-process) {members:9.0f} joins/s")
    print(f"  ratio members/bare       {members / bare:9.2%}")


def joins(url: str, headers: dict[str, str]) -> Callable[[aiohttp.ClientSession], Awaitable[int]]:
    """A sender for `rate`: every call a new person (a fresh external reference)."""
    numbers = counter()

    async def send(session: aiohttp.ClientSession) -> int:
        async with session.post(url, headers=headers, json=body(next(numbers))) as response:
            await response.read()
            return response.status

    return send


async def against_gateway(system: RunningSystem, bare_url: str) -> tuple[float, float]:
    community, secret = community_key(system)
    path = f"/v1/communities/{community}/members"
    bare = await rate(joins(bare_url + path, {}), 201)
    through = await rate(joins(system.gateway + path, {"Authorization": f"Bearer {secret}"}),
                         201)
    return bare, through


def _wait_listening(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/docs", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError("the bare app did not start")


def gateway() -> None:
    (port,) = free_ports(1)
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.members_join:bare_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"], env=dict(os.environ),
    )
    bare_url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(bare_url)
        with (
            tempfile.TemporaryDirectory(prefix="gatherly-bench-") as data_dir,
            RunningSystem(Path(data_dir)) as system,
        ):
            bare_rate, through = asyncio.run(against_gateway(system, bare_url))
    finally:
        bare.terminate()
        bare.wait(10)
    print(f"members join through the gateway ({SECONDS:.0f} s each, {CONCURRENCY} in flight,"
          " aiohttp over loopback)")
    print(f"  bare FastAPI POST (uvicorn)              {bare_rate:7.0f} requests/s")
    print(f"  join: Traefik + forwardAuth + members    {through:7.0f} joins/s")
    print(f"  ratio                                    {through / bare_rate:7.2f}  (goal >= 0.5)")


async def cpu_per_join(system: RunningSystem) -> tuple[int, dict[str, float]]:
    community, secret = community_key(system)
    path = f"/v1/communities/{community}/members"
    assert system.process is not None
    before = cpu_by_component(system.process.pid)
    started = time.perf_counter()
    per_second = await rate(joins(system.gateway + path, {"Authorization": f"Bearer {secret}"}),
                            201)
    done = round(per_second * (time.perf_counter() - started))
    after = cpu_by_component(system.process.pid)
    return done, {label: after[label] - before.get(label, 0.0) for label in after}


def cpu() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="gatherly-bench-") as data_dir,
        RunningSystem(Path(data_dir)) as system,
    ):
        done, spent = asyncio.run(cpu_per_join(system))
    print(f"CPU per join under `gatherly up`, {done} joins through the gateway"
          f" ({CONCURRENCY} in flight; load generator not counted)")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"  {label:32} {seconds / done * 1000:6.2f} ms")
    print(f"  {'all':32} {sum(spent.values()) / done * 1000:6.2f} ms")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "gateway"
    if mode == "cpu":
        cpu()
    elif mode == "in-process":
        asyncio.run(in_process(int(sys.argv[2]) if len(sys.argv) > 2 else 2000))
    else:
        gateway()
