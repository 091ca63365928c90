"""Telegram Bot API updates and VK Callback API events, shaped like the platforms' documented
examples, recorded through the inbound service into the owning services (real Postgres)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatherly.settings import Settings
from tests.integration.test_inbound_api import System, settings  # noqa: F401

TG_TOKEN = "tg-token_1"
USER = {"id": 1111111, "is_bot": False, "first_name": "Test", "last_name": "Lastname",
        "username": "Test"}
GROUP = {"id": -1001234567890, "title": "Alumni", "type": "supergroup"}
CHANNEL = {"id": -1009876543210, "title": "News", "username": "alumni_news", "type": "channel"}


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:  # noqa: F811
    system = System(settings)
    await system.source("tg", {"kind": "telegram", "secrets": [TG_TOKEN]})
    await system.source("vk", {"kind": "vk", "secrets": ["s3cret"], "confirmation": "a1b2c3"})
    yield system
    await system.close()


def now() -> int:
    return int(time.time())


def tg_message(update_id: int, **fields: Any) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "from": USER,
                                                "chat": GROUP, "date": now(), **fields}}


async def test_telegram_join_is_recorded_once_however_often_telegram_retries(
    system: System,
) -> None:
    update = tg_message(10000, new_chat_participant=USER, new_chat_member=USER,
                        new_chat_members=[USER])
    first = await system.telegram(update)
    again = await system.telegram(update)
    assert first.status_code == again.status_code == 200, first.text
    assert again.json()["replayed"] is True
    assert (await system.facts())["members"] == ["gatherly.member.joined"]


async def test_a_telegram_user_seen_first_reacting_becomes_a_member_once(system: System) -> None:
    post = {"update_id": 20000, "channel_post": {
        "message_id": 7, "sender_chat": CHANNEL, "chat": CHANNEL, "date": now(),
        "text": "Meetup recap"}}
    assert (await system.telegram(post)).status_code == 200
    for update_id, old, new in ((20001, [], ["👍"]), (20002, ["👍"], ["👍", "❤"])):
        reaction = {"update_id": update_id, "message_reaction": {
            "chat": CHANNEL, "message_id": 7, "user": USER, "date": now(),
            "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
            "new_reaction": [{"type": "emoji", "emoji": e} for e in new]}}
        response = await system.telegram(reaction)
        assert response.status_code == 200, response.text
    left = tg_message(20003, left_chat_member=USER)
    assert (await system.telegram(left)).status_code == 200
    facts = await system.facts()
    assert facts["members"] == ["gatherly.member.joined", "gatherly.member.left"]
    assert facts["engagement"] == ["gatherly.content.published", "gatherly.reaction.added",
                                   "gatherly.reaction.added"]


async def test_a_reaction_on_a_message_never_published_records_nothing(system: System) -> None:
    reaction = {"update_id": 30000, "message_reaction": {
        "chat": GROUP, "message_id": 99, "user": USER, "date": now(),
        "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}}
    response = await system.telegram(reaction)
    assert response.status_code == 200
    skipped = response.json()["parts"]["engagement"]["results"][0]
    assert skipped["recorded"] is False and "no content item" in skipped["skipped"]
    assert (await system.facts())["engagement"] == []


async def test_a_wrong_telegram_secret_token_is_401(system: System) -> None:
    update = tg_message(40000, new_chat_members=[USER])
    assert (await system.telegram(update, token="guess")).status_code == 401
    assert (await system.client.post("/v1/communities/c1/inbound/tg", json=update)
            ).status_code == 401
    assert (await system.facts())["members"] == []


async def test_an_unmapped_telegram_update_kind_is_422_naming_it(system: System) -> None:
    response = await system.telegram({"update_id": 1, "callback_query": {"id": "4382"}})
    assert response.status_code == 422 and "callback_query" in response.json()["detail"]


def vk_event(kind: str, obj: dict[str, Any], event_id: str, secret: str = "s3cret"
             ) -> dict[str, Any]:
    return {"group_id": 123456, "type": kind, "event_id": event_id, "v": "5.199",
            "object": obj, "secret": secret}


async def test_vk_confirmation_answers_the_configured_string(system: System) -> None:
    response = await system.vk({"type": "confirmation", "group_id": 123456})
    assert response.status_code == 200 and response.text == "a1b2c3"


async def test_vk_community_life_is_recorded_and_answered_ok(system: System) -> None:
    post = {"id": 28, "from_id": -123456, "owner_id": -123456, "date": now(),
            "marked_as_ads": 0, "post_type": "post", "text": "Post text", "can_edit": 1,
            "created_by": 564321, "can_delete": 1, "comments": {"count": 0}}
    like = {"liker_id": 1, "object_type": "post", "object_owner_id": -123456, "object_id": 28,
            "thread_reply_id": 0, "post_id": 0}
    events = [
        vk_event("group_join", {"user_id": 1, "join_type": "join"}, "e1"),
        vk_event("wall_post_new", post, "e2"),
        vk_event("like_add", like, "e3"),
        vk_event("wall_reply_new", {"id": 2, "from_id": 1, "date": now(), "text": "Great!",
                                    "post_owner_id": -123456, "post_id": 28}, "e4"),
        vk_event("like_remove", like, "e5"),
        vk_event("like_add", like, "e3"),  # VK retrying e3: recorded once
        vk_event("group_leave", {"user_id": 1, "self": 1}, "e6"),
    ]
    for event in events:
        response = await system.vk(event)
        assert (response.status_code, response.text) == (200, "ok"), event["type"]
    facts = await system.facts()
    assert facts["members"] == ["gatherly.member.joined", "gatherly.member.left"]
    assert facts["engagement"] == ["gatherly.content.published", "gatherly.reaction.added",
                                   "gatherly.reaction.added", "gatherly.reaction.removed"]


async def test_a_wrong_vk_secret_is_401_even_for_the_handshake(system: System) -> None:
    join = vk_event("group_join", {"user_id": 1, "join_type": "join"}, "e1", secret="guess")
    assert (await system.vk(join)).status_code == 401
    handshake = {"type": "confirmation", "group_id": 123456, "secret": "guess"}
    assert (await system.vk(handshake)).status_code == 401
    assert (await system.facts())["members"] == []


async def test_an_unmapped_vk_type_is_422(system: System) -> None:
    response = await system.vk(vk_event("message_new", {"message": {}}, "e9"))
    assert response.status_code == 422 and "message_new" in response.json()["detail"]
