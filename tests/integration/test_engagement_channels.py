"""Custom channels in engagement (issues #3, #5): with the gateway's
`X-Gatherly-Community-Channels` header, every write that names a channel (content, a view, a
counter snapshot, a reaction, a platform's reaction count, feedback, a batch item) may name a
built-in channel or one the community added, nothing else: 422 problem+json naming the field,
nothing written (a batch refuses the item alone). Without the header (a direct call that
bypassed the gateway) any custom slug is taken."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.integration.test_engagement_api import BASE, T0, client, event_types, publish

__all__ = ["client"]

CHANNELS = {"X-Gatherly-Community-Channels": "alumni-chat, founders"}
A = str(uuid.uuid4())


def refused(response: httpx.Response, channel: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == "channel" and channel in problem["detail"], problem


def writes(content_id: str, channel: str, day: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """Every single write that names a channel, each naming `channel` (snapshots as of `day`,
    the reaction by a new member: each is a new fact)."""
    as_of = f"2026-02-{day:02d}T00:00:00+00:00"
    return [
        ("/content", {"channel": channel, "kind": "post", "published_at": T0}),
        ("/views", {"content_id": content_id, "channel": channel}),
        ("/views/counters", {"content_id": content_id, "counter": "youtube", "total": 10,
                             "as_of": as_of, "channel": channel}),
        ("/reactions", {"content_id": content_id, "member_id": str(uuid.uuid4()), "kind": "like",
                        "channel": channel}),
        (f"/content/{content_id}/reaction-counts",
         {"counter": "vk", "kind": "like", "total": 3, "as_of": as_of, "channel": channel}),
        ("/feedback", {"member_id": A, "about_kind": "community", "channel": channel,
                       "text": "hi"}),
    ]


async def test_a_write_naming_a_channel_the_community_lacks_is_a_problem_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    before = await event_types(client)
    for path, body in writes(item["id"], "madeup"):
        refused(await client.post(f"{BASE}{path}", json=body, headers=CHANNELS), "madeup")
    empty = {"X-Gatherly-Community-Channels": ""}  # the community added no channel at all
    for path, body in writes(item["id"], "founders"):
        refused(await client.post(f"{BASE}{path}", json=body, headers=empty), "founders")
    assert await event_types(client) == before


async def test_a_write_naming_a_channel_the_community_added_or_a_built_in_one_is_recorded(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    for day, channel in enumerate(("founders", "telegram"), start=1):
        for path, body in writes(item["id"], channel, day):
            response = await client.post(f"{BASE}{path}", json=body, headers=CHANNELS)
            assert response.status_code == 201, (path, response.text)


async def test_without_the_gateways_header_any_custom_slug_is_taken(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    for path, body in writes(item["id"], "other-club"):
        assert (await client.post(f"{BASE}{path}", json=body)).status_code == 201, path


async def test_a_batch_item_naming_a_channel_the_community_lacks_is_refused_alone(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    items = [
        {"op": "view", "content_id": item["id"], "channel": "founders"},
        {"op": "view", "content_id": item["id"], "channel": "madeup"},
        {"op": "add_reaction", "content_id": item["id"], "member_id": A, "kind": "like",
         "channel": "nope"},
        {"op": "view", "content_id": item["id"]},  # the item's own channel
        {"op": "add_reaction", "content_id": item["id"], "member_id": A, "kind": "love",
         "channel": "vk"},
    ]
    response = await client.post(f"{BASE}/engagement/batch", json={"items": items},
                                 headers=CHANNELS)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["status"] for r in answer["results"]] == [201, 422, 422, 201, 201]
    assert (answer["recorded"], answer["refused"]) == (3, 2)
    for result, channel in zip(answer["results"][1:3], ("madeup", "nope"), strict=True):
        assert result["problem"]["field"] == "channel" and channel in result["problem"]["detail"]
    assert (await event_types(client)).count("gatherly.content.viewed") == 2
