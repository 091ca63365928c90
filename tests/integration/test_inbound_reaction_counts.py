"""Telegram's anonymous reaction counts (MessageReactionCountUpdated, shaped like the Bot API
documentation) recorded through the inbound service as engagement's reaction-count snapshots."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gatherly.settings import Settings
from tests.integration.test_inbound_api import System, settings  # noqa: F401

TG_TOKEN = "tg-token_1"
CHANNEL = {"id": -1009876543210, "title": "News", "username": "alumni_news", "type": "channel"}
START = int(time.time()) - 600


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:  # noqa: F811
    system = System(settings)
    await system.source("tg", {"kind": "telegram", "secrets": [TG_TOKEN]})
    yield system
    await system.close()


def reaction_count(update_id: int, date: int, message_id: int = 7,
                   **emoji: int) -> dict[str, Any]:
    names = {"like": "👍", "heart": "❤", "smitten": "😍", "fire": "🔥"}
    return {"update_id": update_id, "message_reaction_count": {
        "chat": CHANNEL, "message_id": message_id, "date": date,
        "reactions": [{"type": {"type": "emoji", "emoji": names[n]}, "total_count": total}
                      for n, total in emoji.items()]}}


async def counts(system: System) -> dict[str, int]:
    conn = await asyncpg.connect(system.url)
    try:
        rows = await conn.fetch("SELECT kind, total FROM engagement.reaction_counters")
    finally:
        await conn.close()
    return {r["kind"]: r["total"] for r in rows}


async def post(system: System) -> None:
    update = {"update_id": 1, "channel_post": {
        "message_id": 7, "sender_chat": CHANNEL, "chat": CHANNEL, "date": START,
        "text": "Meetup recap"}}
    assert (await system.telegram(update)).status_code == 200


async def test_reaction_counts_on_a_channel_post_are_snapshots_per_kind(system: System) -> None:
    await post(system)
    update = reaction_count(2, START + 60, like=5, heart=2, smitten=1)
    first = await system.telegram(update)
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] == 2  # like and love; kinds never counted stay unrecorded
    again = await system.telegram(update)
    assert again.json()["replayed"] is True
    assert await counts(system) == {"like": 5, "love": 3}
    # Every 👍 withdrawn, one 🔥 added: the like count drops to 0, custom appears.
    later = await system.telegram(reaction_count(3, START + 120, heart=3, fire=1))
    assert later.status_code == 200 and later.json()["recorded"] == 3
    assert await counts(system) == {"like": 0, "love": 3, "custom": 1}
    facts = (await system.facts())["engagement"]
    assert facts.count("gatherly.content.reactions_counted") == 5


async def test_an_older_count_delivered_late_changes_nothing_and_is_answered(
    system: System,
) -> None:
    await post(system)
    assert (await system.telegram(reaction_count(2, START + 120, like=5))).status_code == 200
    late = await system.telegram(reaction_count(3, START + 60, like=9))
    assert late.status_code == 200, late.text
    [like] = [r for r in late.json()["parts"]["engagement"]["results"] if "already" in
              r.get("skipped", "")]
    assert like["recorded"] is False
    assert await counts(system) == {"like": 5}


async def test_a_count_on_a_message_never_published_records_nothing(system: System) -> None:
    response = await system.telegram(reaction_count(2, START + 60, message_id=99, like=5))
    assert response.status_code == 200 and response.json()["recorded"] == 0
    assert (await system.facts())["engagement"] == []
