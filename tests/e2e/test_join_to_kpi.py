"""Through Traefik, the way a frontend uses it: joins show in the KPI API within a second."""

from __future__ import annotations

import httpx
import pytest

from bench.freshness import measure_freshness, percentile
from bench.system import RunningSystem

pytestmark = pytest.mark.e2e


async def test_200_joins_each_show_in_the_kpi_within_a_second(system: RunningSystem) -> None:
    latencies = await measure_freshness(system.gateway, system.headers, writes=200, rate=50)
    assert len(latencies) == 200
    assert percentile(latencies, 99) < 1.0, sorted(latencies)[-5:]


async def test_a_join_through_the_gateway_answers_201_and_lists(system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers) as client:
        joined = await client.post("/v1/communities/gw/members", json={"channel": "vk"})
        assert joined.status_code == 201
        listed = await client.get("/v1/communities/gw/members")
        assert [m["id"] for m in listed.json()["items"]] == [joined.json()["id"]]


async def test_identity_headers_from_the_client_are_ignored(system: RunningSystem) -> None:
    forged = {"X-Gatherly-Community": "gw", "X-Gatherly-Scopes": "read,write,admin"}
    async with httpx.AsyncClient(base_url=system.gateway) as client:
        response = await client.get("/v1/communities/gw/members", headers=forged)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_bad_input_through_the_gateway_is_a_problem(system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers) as client:
        malformed = await client.post("/v1/communities/gw/members", content=b"{not json",
                                      headers={"Content-Type": "application/json"})
        oversized = await client.post("/v1/communities/gw/members",
                                      content=b'{"channel":"' + b"x" * 2_000_000 + b'"}',
                                      headers={"Content-Type": "application/json"})
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    assert oversized.status_code == 413
    assert oversized.headers["content-type"] == "application/problem+json"
