"""Through the gateway, values every schema type takes but no store can hold get a 4xx problem
and write nothing: moments whose UTC falls outside Python's range (year 1 east of UTC, year 9999
west of it), and counts past what the columns and the KPI sums hold. They were 500s, and a
counter's total of 2^63 - 1 was accepted and then stopped the KPI projection for every
community (its batch failed with `bigint out of range`, retried for ever)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bench.system import RunningSystem

pytestmark = pytest.mark.e2e

C = "/v1/communities/edges"
EVENT = {"title": "t", "format": "online", "link": "https://example.org/t", "time_zone": "UTC",
         "channel": "online_event", "starts_at": "2026-01-01T10:00:00Z",
         "ends_at": "2026-01-01T12:00:00Z"}
EAST_OF_YEAR_1, WEST_OF_YEAR_9999 = "0001-01-01T00:00:00+05:00", "9999-12-31T23:30:00-05:00"


def refused(content: str, member: str) -> list[tuple[str, dict[str, Any]]]:
    counter = {"content_id": content, "counter": "youtube", "as_of": "2026-01-01T00:00:00Z"}
    return [
        (f"{C}/members", {"channel": "vk", "joined_at": EAST_OF_YEAR_1}),
        (f"{C}/members", {"channel": "vk", "joined_at": WEST_OF_YEAR_9999}),
        (f"{C}/content", {"channel": "youtube", "kind": "video", "published_at": EAST_OF_YEAR_1}),
        (f"{C}/views", {"content_id": content, "channel": "vk", "viewed_at": WEST_OF_YEAR_9999}),
        (f"{C}/reactions", {"content_id": content, "member_id": member, "kind": "like",
                            "at": EAST_OF_YEAR_1}),
        (f"{C}/views/counters", {**counter, "total": 2**63 - 1}),
        (f"{C}/views/counters", {**counter, "total": 10**30}),
        (f"{C}/content/{content}/reaction-counts", {**counter, "kind": "like",
                                                    "total": 2**63 - 1}),
        (f"{C}/events", {**EVENT, "capacity": 3_000_000_000}),
        (f"{C}/events", {**EVENT, "starts_at": EAST_OF_YEAR_1}),
        (f"{C}/events", {**EVENT, "ends_at": WEST_OF_YEAR_9999}),
    ]


async def test_values_no_store_can_hold_are_refused_and_the_kpis_keep_up(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=30) as client:
        member = (await client.post(f"{C}/members", json={"channel": "vk"})).json()["id"]
        content = (await client.post(f"{C}/content", json={"channel": "youtube",
                                                           "kind": "video"})).json()["id"]
        for path, body in refused(content, member):
            answer = await client.post(path, json=body)
            assert answer.status_code == 422, (path, body, answer.status_code, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        batch = await client.post(f"{C}/engagement/batch", json={"items": [
            {"op": "view", "content_id": content, "viewed_at": EAST_OF_YEAR_1},
            {"op": "view", "content_id": content}]})
        assert batch.status_code == 200, batch.text
        assert [(r["status"], r["recorded"]) for r in batch.json()["results"]] == [
            (422, False), (201, True)]
        # The one member joined reaches the KPIs: nothing above stalled the projection.
        for _ in range(100):
            total = (await client.get(f"{C}/kpis/members")).json()["total"]
            if total == 1:
                break
            await asyncio.sleep(0.1)
        assert total == 1
        listed = (await client.get(f"{C}/members")).json()
    assert listed["total"] == 1  # the refused joins wrote nothing
