"""Kill parts of the running system mid-stream: nothing is lost and nothing counts twice.

Each test writes joins through the gateway while one component is killed (`kill -9`, or stopped),
lets the supervisor bring it back, then compares three independent views: the members store (the
source of truth), the NATS stream, and the KPI API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from bench.system import RunningSystem
from gatherly.settings import Settings
from tests.helpers import eventually, stream_envelopes

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]


async def write_joins(
    system: RunningSystem, community: str, count: int, rate: float,
    at_half: Callable[[], None],
) -> tuple[list[str], Counter[int]]:
    """Join `count` members at `rate`/s, calling `at_half` midway; the ids that got a 2xx."""
    accepted: list[str] = []
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=15) as client:

        async def join() -> None:
            try:
                response = await client.post(f"/v1/communities/{community}/members",
                                             json={"channel": "telegram"})
            except httpx.HTTPError:
                statuses[0] += 1
                return
            statuses[response.status_code] += 1
            if response.status_code == 201:
                accepted.append(response.json()["id"])
            else:
                assert response.headers.get("content-type") == "application/problem+json", (
                    response.status_code, response.headers, response.text[:300])

        tasks = []
        for i in range(count):
            if i == count // 2:
                await asyncio.to_thread(at_half)
            tasks.append(asyncio.create_task(join()))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return accepted, statuses


async def store_joins(system: RunningSystem, community: str) -> list[str]:
    conn = await asyncpg.connect(system.postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT stream_id FROM members.events WHERE community_id = $1"
            " AND type = 'gatherly.member.joined'", community)
    finally:
        await conn.close()
    return [row["stream_id"] for row in rows]


async def kpi_total(system: RunningSystem, community: str) -> int:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers) as client:
        response = await client.get(f"/v1/communities/{community}/kpis/members")
    return int(response.json()["total"]) if response.status_code == 200 else -1


async def assert_consistent(system: RunningSystem, community: str, accepted: list[str]) -> None:
    stored = await store_joins(system, community)
    assert set(accepted) <= set(stored), "a join that got a 2xx is missing from the store"

    async def kpi_caught_up() -> bool:
        return await kpi_total(system, community) == len(stored)

    await eventually(kpi_caught_up, within=60, interval=0.2)
    await asyncio.sleep(1.0)  # a double count would show up after redeliveries
    assert await kpi_total(system, community) == len(stored)
    settings = Settings(nats_url=system.nats_url, stream_name="GATHERLY")
    on_stream = Counter(
        e.subject for e in await stream_envelopes(settings) if e.community_id == community
    )
    assert on_stream == Counter(stored), "every stored event is on the stream exactly once"


def community() -> str:
    return f"fault-{uuid.uuid4().hex[:8]}"


async def joins_while_killing(
    system: RunningSystem, component: str, count: int, rate: float
) -> tuple[str, list[str], Counter[int]]:
    """Join `count` members at `rate`/s, kill -9 `component` halfway, wait until it is back."""
    name, killed = community(), []
    accepted, statuses = await write_joins(
        system, name, count, rate, lambda: killed.append(system.kill(component))
    )
    system.wait_restarted(component, killed[0])
    return name, accepted, statuses


@pytest.mark.parametrize(
    "component",
    ["project-kpi", "relay-members", "nats"],
    ids=["kpis_survive_a_killed_projector", "a_killed_relay_publishes_every_event_once",
         "a_restarted_nats_server_loses_nothing"],
)
async def test_a_killed_pipeline_process_loses_nothing_and_doubles_nothing(
    system: RunningSystem, component: str
) -> None:
    name, accepted, statuses = await joins_while_killing(system, component, 300, 150)
    assert statuses[201] == 300, "writes go to Postgres and must not depend on " + component
    await assert_consistent(system, name, accepted)


async def test_writes_during_a_postgres_outage_get_503_and_nothing_acknowledged_is_lost(
    system: RunningSystem,
) -> None:
    name, accepted, statuses = await joins_while_killing(system, "postgres", 400, 100)
    assert statuses[503] > 0, statuses
    assert set(statuses) <= {201, 503}, statuses
    await assert_consistent(system, name, accepted)
