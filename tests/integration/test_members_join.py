"""A join is one statement on an autocommit connection: racing joins of one person still make
one member and one event, and a refused referral writes nothing."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.test_members_api import BASE, client, event_count, settings

__all__ = ["client", "settings"]


async def test_racing_joins_of_one_person_create_one_member_and_one_event(
    client: httpx.AsyncClient,
) -> None:
    body = {"channel": "telegram", "external_ref": "tg-race", "display_name": "Ann"}
    answers = await asyncio.gather(*(client.post(BASE, json=body) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await event_count(client) == 1


async def test_a_referral_from_an_unknown_member_writes_nothing_but_a_known_person_answers(
    client: httpx.AsyncClient,
) -> None:
    stranger = "00000000-0000-0000-0000-0000000000aa"
    refused = await client.post(BASE, json={"channel": "vk", "external_ref": "v1",
                                            "invited_by": stranger})
    assert refused.status_code == 422 and await event_count(client) == 0
    listed = (await client.get(BASE)).json()
    assert listed["items"] == []  # the list and profile rows rolled back with the transaction
    known = (await client.post(BASE, json={"channel": "vk", "external_ref": "v1"})).json()
    again = await client.post(BASE, json={"channel": "vk", "external_ref": "v1",
                                          "invited_by": stranger})
    assert again.status_code == 200 and again.json()["id"] == known["id"]
