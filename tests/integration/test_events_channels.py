"""Custom channels in the events service (issues #3, #5): with the gateway's
`X-Gatherly-Community-Channels` header, an event's channel, a registration's and a walk-in's are
a built-in channel or one the community added, nothing else: 422 problem+json naming the field,
nothing written. Without the header (a direct call that bypassed the gateway) any custom slug is
taken."""

from __future__ import annotations

import httpx

from tests.integration.test_events_api import (
    BASE,
    client,
    event_count,
    meetup,
    member,
    open_event,
)

__all__ = ["client"]

CHANNELS = {"X-Gatherly-Community-Channels": "alumni-chat, founders"}


def refused(response: httpx.Response, channel: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == "channel" and channel in problem["detail"], problem


async def test_an_event_announced_on_a_channel_the_community_lacks_is_refused(
    client: httpx.AsyncClient,
) -> None:
    refused(await client.post(BASE, json=meetup(channel="telgram"), headers=CHANNELS), "telgram")
    refused(await client.post(BASE, json=meetup(channel="founders"),
                              headers={"X-Gatherly-Community-Channels": ""}), "founders")
    assert await event_count(client) == 0
    for channel in ("founders", "telegram"):
        created = await client.post(BASE, json=meetup(channel=channel), headers=CHANNELS)
        assert created.status_code == 201, created.text
    assert (await client.post(BASE, json=meetup(channel="other-club"))).status_code == 201


async def test_a_registration_or_walk_in_through_a_channel_the_community_lacks_is_refused(
    client: httpx.AsyncClient,
) -> None:
    event_id = await open_event(client)
    before = await event_count(client)
    registrations, check_ins = f"{BASE}/{event_id}/registrations", f"{BASE}/{event_id}/check-ins"
    refused(await client.post(registrations, json={"member_id": member(), "channel": "madeup"},
                              headers=CHANNELS), "madeup")
    refused(await client.post(check_ins, json={"member_id": member(), "walk_in": True,
                                               "channel": "madeup"}, headers=CHANNELS), "madeup")
    assert await event_count(client) == before
    registered = await client.post(registrations, json={"member_id": member(),
                                                        "channel": "alumni-chat"},
                                   headers=CHANNELS)
    assert registered.status_code == 201, registered.text
    walk_in = await client.post(check_ins, json={"member_id": member(), "walk_in": True,
                                                 "channel": "founders"}, headers=CHANNELS)
    assert walk_in.status_code == 201, walk_in.text
