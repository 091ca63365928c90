"""forwardAuth hands each request its community's settings (time zone, feedback SLA, custom
channels) as headers, for community keys and the operator alike, and follows a change."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration import test_gateway_keys as edge
from tests.integration.test_gateway_keys import OPERATOR_KEY, Gateway, community, new_key

# The edge app in-process against real Postgres, as the gateway key tests run it.
settings, gateway = edge.settings, edge.gateway

ZONE, SLA, CHANNELS = (
    "x-gatherly-community-time-zone",
    "x-gatherly-community-feedback-sla-hours",
    "x-gatherly-community-channels",
)


async def auth(gateway: Gateway, key: str, path: str) -> httpx.Response:
    return await gateway.client.get(
        "/auth", headers={"Authorization": f"Bearer {key}", "X-Forwarded-Uri": path}
    )


async def test_a_community_key_gets_its_communitys_settings(gateway: Gateway) -> None:
    club = await community(gateway, "berlin-club")
    key = await new_key(gateway, club["id"], scopes=["read"])
    answer = await auth(gateway, key["secret"], f"/v1/communities/{club['id']}/kpis/members")
    assert answer.status_code == 200
    assert (answer.headers[ZONE], answer.headers[SLA], answer.headers[CHANNELS]) == (
        "Europe/Berlin", "24", "discord")


async def test_the_operator_gets_the_settings_and_none_for_an_unknown_community(
    gateway: Gateway,
) -> None:
    club = await community(gateway, "operated")
    known = await auth(gateway, OPERATOR_KEY, f"/v1/communities/{club['id']}/kpis")
    unknown = await auth(gateway, OPERATOR_KEY, "/v1/communities/nobody/kpis")
    assert known.headers[ZONE] == "Europe/Berlin"
    assert unknown.status_code == 200
    assert ZONE not in unknown.headers and SLA not in unknown.headers


async def test_a_changed_zone_reaches_the_headers_within_the_refresh(gateway: Gateway) -> None:
    club = await community(gateway, "movers")
    key = await new_key(gateway, club["id"], scopes=["read", "admin"])
    path = f"/v1/communities/{club['id']}"
    assert (await auth(gateway, key["secret"], path)).headers[ZONE] == "Europe/Berlin"
    changed = await gateway.call("PATCH", path, OPERATOR_KEY,
                                 {"time_zone": "Asia/Tokyo", "custom_channels": [],
                                  "feedback_sla_hours": 48},
                                 **{"If-Match": f'"{club["version"]}"'})
    assert changed.status_code == 200, changed.text
    for _ in range(50):  # the cache refreshes every 0.3 s here
        answer = await auth(gateway, key["secret"], path)
        if answer.headers[ZONE] == "Asia/Tokyo":
            break
        await asyncio.sleep(0.1)
    assert (answer.headers[ZONE], answer.headers[SLA], answer.headers[CHANNELS]) == (
        "Asia/Tokyo", "48", "")


async def test_a_community_created_without_an_sla_answers_feedback_within_24_hours(
    gateway: Gateway,
) -> None:
    """Issue #6: the share answered within the community's SLA, 24 h by default."""
    created = await gateway.call("POST", "/v1/communities", OPERATOR_KEY,
                                 {"name": "Plain", "slug": "plain"})
    assert created.status_code == 201, created.text
    assert created.json()["feedback_sla_hours"] == 24
    answer = await auth(gateway, OPERATOR_KEY, f"/v1/communities/{created.json()['id']}/kpis")
    assert answer.headers[SLA] == "24"
