"""The member lifecycle through the API against real Postgres and NATS: known references, profile
updates with If-Match, roles, rejoin, search, history, and the events that reach the stream."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from gatherly.outbox import Relay
from gatherly.settings import Settings
from tests.helpers import eventually, running, stream_envelopes
from tests.integration.test_members_api import BASE, client, event_count, settings

__all__ = ["client", "settings"]

ANN = {"channel": "telegram", "external_ref": "100500", "display_name": "Ann Lee",
       "email": "ann@example.org", "city": "Riga", "interests": ["music", "ai"],
       "handles": {"telegram": "@annlee"}}


async def join(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await client.post(BASE, json=body)
    assert response.status_code in (200, 201), response.text
    member: dict[str, object] = response.json()
    return member


async def test_a_join_with_a_known_external_ref_answers_200_with_the_same_member(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post(BASE, json=ANN)
    assert first.status_code == 201
    again = await client.post(BASE, json={**ANN, "display_name": "Someone else"})
    assert again.status_code == 200
    assert again.json() == first.json()
    other_channel = await client.post(BASE, json={**ANN, "channel": "vk"})
    assert other_channel.status_code == 201
    assert await event_count(client) == 2


async def test_racing_joins_of_one_person_create_one_member(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(client.post(BASE, json=ANN) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await event_count(client) == 1


async def test_a_profile_update_needs_the_current_version(client: httpx.AsyncClient) -> None:
    member = await join(client, **ANN)
    url = f"{BASE}/{member['id']}"
    missing = await client.patch(url, json={"city": "Oslo"})
    assert missing.status_code == 428
    assert missing.headers["content-type"] == "application/problem+json"
    stale = await client.patch(url, json={"city": "Oslo"}, headers={"If-Match": '"9"'})
    assert stale.status_code == 412 and stale.headers["ETag"] == '"1"'
    bad = await client.patch(url, json={"email": "nope"}, headers={"If-Match": '"1"'})
    assert bad.status_code == 422 and bad.json()["field"] == "email"
    assert await event_count(client) == 1
    updated = await client.patch(url, json={"city": "Oslo", "display_name": "Ann Lee"},
                                 headers={"If-Match": '"1"'})
    assert updated.status_code == 200, updated.text
    assert updated.json()["city"] == "Oslo" and updated.headers["ETag"] == '"2"'
    same = await client.patch(url, json={"city": "Oslo"}, headers={"If-Match": '"2"'})
    assert same.status_code == 200 and same.headers["ETag"] == '"2"'
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        data = await conn.scalar(text(
            "SELECT data FROM events WHERE type = 'gatherly.member.profile_updated'"))
    assert data == {"fields": ["city"]}


async def test_roles_are_assigned_once_removed_and_unknown_ones_refused(
    client: httpx.AsyncClient,
) -> None:
    member = await join(client, channel="offline")
    url = f"{BASE}/{member['id']}/roles"
    assert (await client.put(f"{url}/mentor")).json()["roles"] == ["mentor"]
    held = await client.put(f"{url}/scout")
    assert held.json()["roles"] == ["mentor", "scout"]
    again = await client.put(f"{url}/mentor")
    assert again.status_code == 200 and again.headers["ETag"] == held.headers["ETag"]
    unknown = await client.put(f"{url}/wizard")
    assert unknown.status_code == 422 and unknown.json()["rule"] == "role"
    removed = await client.delete(f"{url}/mentor")
    assert removed.json()["roles"] == ["scout"]
    assert await event_count(client) == 4


async def test_a_member_who_left_rejoins_with_the_same_id_and_history(
    client: httpx.AsyncClient,
) -> None:
    member = await join(client, channel="vk")
    url = f"{BASE}/{member['id']}"
    early = await client.post(f"{url}/rejoin", json={"channel": "vk"})
    assert early.status_code == 422 and early.json()["rule"] == "status"
    await client.post(f"{url}/leave", json={"reason": "busy"})
    back = await client.post(f"{url}/rejoin", json={"channel": "telegram"})
    assert back.status_code == 200, back.text
    assert (back.json()["id"], back.json()["status"]) == (member["id"], "active")
    history = (await client.get(f"{url}/history")).json()["items"]
    assert [item["summary"] for item in history] == [
        "Came back via Telegram", "Left the community: busy", "Joined via VK"]
    assert [item["version"] for item in history] == [3, 2, 1]


async def test_a_referrer_must_be_a_member_of_the_same_community(
    client: httpx.AsyncClient,
) -> None:
    scout = await join(client, channel="offline")
    invited = await join(client, channel="referral", invited_by=scout["id"])
    assert invited["invited_by"] == scout["id"]
    other = {"X-Gatherly-Community": "c2", "X-Gatherly-Scopes": "read,write"}
    foreign = await client.post("/v1/communities/c2/members", headers=other,
                                json={"channel": "referral", "invited_by": scout["id"]})
    assert foreign.status_code == 422 and foreign.json()["rule"] == "invited_by"


async def test_search_filters_combine_and_page_in_a_stable_order(
    client: httpx.AsyncClient,
) -> None:
    ann = await join(client, **ANN)
    anna = await join(client, channel="vk", display_name="anna K", interests=["music"],
                      joined_at="2026-02-01T00:00:00+00:00")
    boris = await join(client, channel="vk", display_name="Boris", email="ANNIE@example.org")
    left = await join(client, channel="email", display_name="Anders")
    await client.post(f"{BASE}/{left['id']}/leave")
    await client.put(f"{BASE}/{anna['id']}/roles/hero")

    async def ids(**params: object) -> list[object]:
        page = (await client.get(BASE, params=params)).json()
        return [m["id"] for m in page["items"]]

    assert len(await ids(q="AN")) == 4
    assert await ids(q="ann", status="active", channel="vk") == [anna["id"], boris["id"]]
    assert await ids(tag="music") == [ann["id"], anna["id"]]
    assert await ids(role="hero") == [anna["id"]]
    assert await ids(status="left") == [left["id"]]
    assert await ids(joined_to="2026-03-01T00:00:00+00:00") == [anna["id"]]
    assert anna["id"] not in await ids(joined_from="2026-03-01T00:00:00+00:00")
    assert len(await ids(joined_from="2026-01-15T00:00:00+00:00")) == 4
    assert await ids(joined_from="2026-01-15T00:00:00+00:00",
                     joined_to="2026-03-01T00:00:00+00:00") == [anna["id"]]
    assert await ids(q="100%") == []
    assert (await client.get(BASE, params={"role": "wizard"})).status_code == 422
    first = (await client.get(BASE, params={"q": "an", "limit": 3})).json()
    assert first["total"] == 4 and len(first["items"]) == 3
    rest = (await client.get(BASE, params={"q": "an", "limit": 3,
                                           "cursor": first["next_cursor"]})).json()
    assert rest["total"] is None and rest["next_cursor"] is None
    assert len({m["id"] for m in first["items"] + rest["items"]}) == 4


async def test_every_member_change_reaches_the_stream_without_personal_values(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    member = await join(client, **ANN)
    url = f"{BASE}/{member['id']}"
    await client.put(f"{url}/roles/guide")
    await client.patch(url, json={"email": "lee@example.org"}, headers={"If-Match": '"2"'})
    await client.post(f"{url}/leave")
    await client.post(f"{url}/rejoin", json={"channel": "telegram"})
    await client.post(f"{url}/erase")
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    relay = Relay(settings, "members", engine)
    async with running(relay):
        async def all_there() -> bool:
            return len(await stream_envelopes(settings)) == 6
        await eventually(all_there)
    envelopes = await stream_envelopes(settings)
    assert [e.type.rsplit(".", 1)[1] for e in envelopes] == [
        "joined", "role_assigned", "profile_updated", "left", "rejoined", "erased"]
    wire = b"".join(e.to_json() for e in envelopes)
    for value in ("100500", "Ann Lee", "ann@example.org", "lee@example.org", "Riga", "annlee"):
        assert value.encode() not in wire
