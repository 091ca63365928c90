"""Through Traefik: the KPI API answers in the community's own time zone and SLA without being
told (forwardAuth hands them over as headers), and a client cannot forge them."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from bench.system import RunningSystem

pytestmark = pytest.mark.e2e


async def test_a_berlin_community_gets_berlin_days_without_passing_tz(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers) as client:
        created = await client.post("/v1/communities", json={
            "name": "Berlin", "slug": "berlin", "time_zone": "Europe/Berlin",
            "feedback_sla_hours": 36})
        assert created.status_code == 201, created.text
        path = f"/v1/communities/{created.json()['id']}"
        joined = await client.post(f"{path}/members", json={"channel": "telegram"})
        assert joined.status_code == 201, joined.text
        # Forged settings are stripped before forwardAuth sets the real ones.
        forged = {"X-Gatherly-Community-Time-Zone": "Asia/Tokyo",
                  "X-Gatherly-Community-Feedback-Sla-Hours": "1"}
        for _ in range(50):
            members = (await client.get(f"{path}/kpis/members", headers=forged)).json()
            if members.get("joined") == 1:
                break
            await asyncio.sleep(0.1)
        feedback = (await client.get(f"{path}/kpis/feedback", headers=forged)).json()
    today_in_berlin = datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()
    assert (members["tz"], members["to"], members["joined"]) == (
        "Europe/Berlin", today_in_berlin, 1)
    assert [p["joined"] for p in members["periods"] if p["start"] == today_in_berlin] == [1]
    assert feedback["sla_hours"] == 36
