"""Gateway cost: requests per second through Traefik + forwardAuth (a community API key, so the
key cache, scope check and token bucket all run) against the same request sent straight to the
service with the identity headers the gateway would add, in the same run.

Two requests: a cheap GET (one member page of one row) and a single write (a join, which commits
an event). Each runs `SECONDS` with `CONCURRENCY` requests in flight, straight first, then through
the gateway; aiohttp as the client (httpx's own CPU cost would dominate on 2 cores).

    .venv/bin/python -m bench.gateway_throughput
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

from bench.system import RunningSystem

SECONDS = 5.0
CONCURRENCY = 16


async def rate(send: Callable[[aiohttp.ClientSession], Awaitable[int]], expect: int) -> float:
    """Requests per second `send` sustains with CONCURRENCY in flight; every answer must match."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(CONCURRENCY):  # warm the connections
            assert await send(session) == expect
        done = 0
        deadline = time.perf_counter() + SECONDS
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                status = await send(session)
                if status != expect:
                    raise AssertionError(f"answered {status}, expected {expect}")
                done += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


def request(
    method: str, url: str, headers: dict[str, str], body: object = None
) -> Callable[[aiohttp.ClientSession], Awaitable[int]]:
    async def send(session: aiohttp.ClientSession) -> int:
        async with session.request(method, url, headers=headers, json=body) as response:
            await response.read()
            return response.status

    return send


def community_key(system: RunningSystem) -> tuple[str, str]:
    """A community and a key with a rate limit the benchmark cannot reach."""
    with httpx.Client(base_url=system.gateway, headers=system.headers, timeout=10) as client:
        created = client.post("/v1/communities", json={"name": "Bench", "slug": "bench"})
        created.raise_for_status()
        community = created.json()["id"]
        key = client.post(f"/v1/communities/{community}/keys",
                          json={"scopes": ["read", "write"], "rate_per_second": 100000,
                                "burst": 1000000})
        key.raise_for_status()
        return community, key.json()["secret"]


async def measure(system: RunningSystem) -> dict[str, tuple[float, float]]:
    community, secret = community_key(system)
    members = f"http://127.0.0.1:{system.env['GATHERLY_MEMBERS_PORT']}"
    path = f"/v1/communities/{community}/members"
    straight = {"X-Gatherly-Community": community, "X-Gatherly-Scopes": "read,write",
                "X-Gatherly-Key-Id": "bench"}
    gated = {"Authorization": f"Bearer {secret}"}
    results: dict[str, tuple[float, float]] = {}
    cases = [("cheap GET", "GET", f"{path}?limit=1", None, 200),
             ("single write", "POST", path, {"channel": "website"}, 201)]
    for name, method, target, body, expect in cases:
        direct = await rate(request(method, members + target, straight, body), expect)
        through = await rate(request(method, system.gateway + target, gated, body), expect)
        results[name] = (direct, through)
    return results


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="gatherly-bench-") as data_dir,
        RunningSystem(Path(data_dir)) as system,
    ):
        results = asyncio.run(measure(system))
    print(f"gateway throughput ({SECONDS:.0f} s each, {CONCURRENCY} in flight)")
    for name, (direct, through) in results.items():
        print(f"  {name:13s} straight {direct:7.0f} req/s   through gateway {through:7.0f} req/s"
              f"   ratio {through / direct:.2f}")


if __name__ == "__main__":
    main()
