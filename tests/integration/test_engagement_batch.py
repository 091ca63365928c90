"""The batch path against real Postgres and NATS: per-item answers, one transaction, events on
the stream, and an invalid envelope writing nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gatherly.outbox import Relay
from gatherly.settings import Settings
from services.engagement.app import create_app
from tests.helpers import eventually, running, stream_envelopes

OPERATOR = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write"}
BASE = "/v1/communities/c1"
BATCH = f"{BASE}/engagement/batch"
MEMBERS = [str(uuid.uuid4()) for _ in range(50)]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engagement") as client:
        client.headers.update(OPERATOR)
        yield client
    await app.state.engine.dispose()


async def scalar(client: httpx.AsyncClient, sql: str) -> Any:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return await conn.scalar(text(sql))


async def publish(client: httpx.AsyncClient) -> str:
    response = await client.post(f"{BASE}/content", json={
        "channel": "telegram", "kind": "post", "published_at": "2026-01-01T00:00:00Z"})
    return str(response.json()["id"])


async def test_a_batch_is_answered_per_item_and_its_events_reach_the_stream(
    client: httpx.AsyncClient, settings: Settings,
) -> None:
    content = await publish(client)
    like = {"op": "add_reaction", "content_id": content, "member_id": MEMBERS[0], "kind": "like"}
    items = [
        {"op": "view", "content_id": content},
        {"op": "view", "content_id": content, "member_id": MEMBERS[1], "count": 4},
        like,
        like,
        {"op": "view", "content_id": str(uuid.uuid4())},
        {"op": "remove_reaction", "content_id": content, "member_id": MEMBERS[2],
         "kind": "love"},
        {"op": "view", "content_id": content, "count": 0},
        {"op": "teleport"},
        {**like, "op": "remove_reaction"},
    ]
    response = await client.post(BATCH, json={"items": items})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(r["index"], r["status"]) for r in answer["results"]] == [
        (0, 201), (1, 201), (2, 201), (3, 200), (4, 422), (5, 404), (6, 422), (7, 422), (8, 200)]
    assert answer["results"][4]["problem"]["field"] == "content_id"
    assert "count" in json.dumps(answer["results"][6]["problem"])
    assert answer["results"][3]["id"] == answer["results"][2]["id"]
    assert (answer["recorded"], answer["refused"]) == (4, 4)
    stats = (await client.get(f"{BASE}/content/{content}")).json()["stats"]
    assert stats["recorded_views"] == 5 and stats["reactions"] == {}

    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    relay = Relay(settings, "engagement", engine)
    async with running(relay):
        await eventually(lambda: _published(relay, 5))
    on_stream = await stream_envelopes(settings)
    assert Counter(e.type for e in on_stream) == {
        "gatherly.content.published": 1, "gatherly.content.viewed": 2,
        "gatherly.reaction.added": 1, "gatherly.reaction.removed": 1}
    viewed = [e for e in on_stream if e.type == "gatherly.content.viewed"]
    assert {e.data["count"] for e in viewed} == {1, 4}
    assert all(e.nats_subject.startswith("gatherly.c1.") for e in on_stream)
    reaction = [e for e in on_stream if e.type.startswith("gatherly.reaction.")]
    assert [e.sequence for e in reaction] == [1, 2]
    assert reaction[0].subject == reaction[1].subject == answer["results"][2]["id"]


async def _published(relay: Relay, count: int) -> bool:
    return relay.published >= count


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"items": [', 400, "not JSON"),
        (b'[{"op": "view"}]', 422, "items"),
        (b'{"items": {"op": "view"}}', 422, "items"),
        (b'{"items": [], "extra": 1}', 422, "items"),
        (b'{"items": []}', 422, "at least one"),
        (None, 422, "at most 1000"),
    ],
)
async def test_an_invalid_batch_envelope_is_refused_whole_and_writes_nothing(
    client: httpx.AsyncClient, body: bytes | None, status: int, says: str,
) -> None:
    content = await publish(client)
    if body is None:
        items = [{"op": "view", "content_id": content}] * 1001
        body = json.dumps({"items": items}).encode()
    response = await client.post(BATCH, content=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    assert await scalar(client, "SELECT count(*) FROM events") == 1
    assert await scalar(client, "SELECT count(*) FROM content_view_totals") == 0


async def test_a_full_batch_of_a_thousand_is_one_transaction(client: httpx.AsyncClient) -> None:
    content = await publish(client)
    items: list[dict[str, Any]] = [{"op": "view", "content_id": content} for _ in range(500)]
    items += [{"op": "add_reaction", "content_id": content, "member_id": m, "kind": kind}
              for m in MEMBERS for kind in ("like", "love", "share", "repost", "comment",
                                             "clap", "wow", "fire", "star", "heart")]
    response = await client.post(BATCH, json={"items": items})
    assert response.status_code == 200
    assert response.json()["recorded"] == 1000
    transactions = await scalar(client, "SELECT count(DISTINCT tx_id) FROM events"
                                        " WHERE type <> 'gatherly.content.published'")
    assert transactions == 1
    stats = (await client.get(f"{BASE}/content/{content}")).json()["stats"]
    assert stats["recorded_views"] == 500 and sum(stats["reactions"].values()) == 500


async def test_racing_batches_record_each_reaction_once(client: httpx.AsyncClient) -> None:
    content = await publish(client)
    items = [{"op": "add_reaction", "content_id": content, "member_id": m, "kind": "like"}
             for m in MEMBERS]
    answers = await asyncio.gather(*(client.post(BATCH, json={"items": items}) for _ in range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(a.json()["recorded"] for a in answers) == len(MEMBERS)
    assert await scalar(client, "SELECT count(*) FROM events WHERE type = 'gatherly.reaction.added'"
                        ) == len(MEMBERS)


async def test_a_batch_saves_each_reaction_and_view_total_as_decided(
    client: httpx.AsyncClient,
) -> None:
    """The read models get each reaction's final state and each item's views added: moments
    to the microsecond with their offset, custom kinds and channels, in one row each."""
    content, other = await publish(client), await publish(client)
    at, later = "2026-03-01T12:00:00.123456+03:00", "2026-03-01T12:30:00.5-02:00"
    items = [
        {"op": "add_reaction", "content_id": content, "member_id": MEMBERS[0],
         "kind": "high-five", "channel": "my_club", "at": at},
        {"op": "add_reaction", "content_id": other, "member_id": MEMBERS[1], "kind": "like",
         "at": at},
        {"op": "remove_reaction", "content_id": other, "member_id": MEMBERS[1], "kind": "like",
         "at": later},
        {"op": "view", "content_id": content, "count": 3},
        {"op": "view", "content_id": other, "count": 2},
        {"op": "view", "content_id": content},
    ]
    response = await client.post(BATCH, json={"items": items})
    assert response.json()["recorded"] == 6, response.text
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        reactions = (await conn.execute(text(
            "SELECT content_id::text, member_id::text, kind, channel, active,"
            " to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), version"
            " FROM reactions ORDER BY kind"))).all()
        totals = dict((await conn.execute(text(
            "SELECT content_id::text, views FROM content_view_totals"))).all())
    assert [tuple(r) for r in reactions] == [
        (content, MEMBERS[0], "high-five", "my_club", True, "2026-03-01 09:00:00.123456", 1),
        (other, MEMBERS[1], "like", "telegram", False, "2026-03-01 14:30:00.500000", 2),
    ]
    assert totals == {content: 4, other: 2}
