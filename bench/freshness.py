"""Freshness: from a join's 2xx at the gateway to the KPI API showing it.

The KPI API shows counts, not ids, so the k-th acknowledged join counts as visible when the
community's total first reaches k. Joins commit in the order they are acknowledged (the 2xx comes
after the commit), so this pairs each 2xx with the moment the k-th commit became visible; the
poller's interval (5 ms) bounds the error.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp

POLL_SECONDS = 0.005


async def measure_freshness(
    gateway: str, headers: dict[str, str], *, writes: int, rate: float
) -> list[float]:
    """Join `writes` members at `rate` per second; seconds from each 2xx to visible in the KPI.

    aiohttp rather than httpx: at a few hundred requests per second httpx's own CPU cost would
    be what this measures (DESIGN §3 measured the same gap for proxies)."""
    community = f"fresh-{uuid.uuid4().hex[:10]}"
    members = f"{gateway}/v1/communities/{community}/members"
    kpi = f"{gateway}/v1/communities/{community}/kpis/members"
    acknowledged: list[float] = []
    visible_at: dict[int, float] = {}
    # Two sessions: a watcher queued behind slow writes in a shared pool would see late.
    async with aiohttp.ClientSession(headers=headers) as watching, aiohttp.ClientSession(
        headers=headers, connector=aiohttp.TCPConnector(limit=64)
    ) as session:
        done = asyncio.Event()

        async def watch() -> None:
            seen, deadline = 0, None
            while seen < writes:
                async with watching.get(kpi) as response:
                    response.raise_for_status()
                    total = int((await response.json())["total"])
                now = time.perf_counter()
                for k in range(seen + 1, total + 1):
                    visible_at[k] = now
                seen = max(seen, total)
                if done.is_set():
                    deadline = deadline or now + 30
                    if now > deadline:
                        raise TimeoutError(f"only {seen} of {writes} joins became visible")
                await asyncio.sleep(POLL_SECONDS)

        async def join() -> None:
            async with session.post(members, json={"channel": "website"}) as response:
                if response.status != 201:
                    answer = await response.text()
                    raise AssertionError(f"join answered {response.status}: {answer}")
                await response.read()
            acknowledged.append(time.perf_counter())

        watcher = asyncio.create_task(watch())
        start = time.perf_counter()
        joins = []
        for i in range(writes):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            joins.append(asyncio.create_task(join()))
        try:
            await asyncio.gather(*joins)
        finally:
            done.set()
        await watcher
    acknowledged.sort()
    return [max(0.0, visible_at[k + 1] - acked) for k, acked in enumerate(acknowledged)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    """`python -m bench.freshness [writes] [rate]`: the whole system via `gatherly up`."""
    import sys
    import tempfile
    from pathlib import Path

    from bench.system import RunningSystem

    writes = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200.0
    with (
        tempfile.TemporaryDirectory(prefix="gatherly-bench-") as root,
        RunningSystem(Path(root)) as system,
    ):
        latencies = asyncio.run(
            measure_freshness(system.gateway, system.headers, writes=writes, rate=rate)
        )
    print(f"freshness, {writes:,} joins at {rate:.0f}/s through the gateway")
    print(f"  2xx -> visible in the KPI API: p50 {percentile(latencies, 50) * 1000:.0f} ms,"
          f" p99 {percentile(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
          "  (goal p50 <= 50 ms, p99 <= 250 ms)")


if __name__ == "__main__":
    main()
