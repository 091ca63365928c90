"""The engagement API in-process against real Postgres: content, views, counter snapshots,
reactions, feedback, introductions and thanks — and bad input writing nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gatherly.settings import Settings
from services.engagement.app import create_app

OPERATOR = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
BASE = "/v1/communities/c1"
T0 = "2026-01-10T10:00:00+00:00"
A, B, C = (str(uuid.uuid4()) for _ in range(3))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"max_body_bytes": 400_000}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engagement") as client:
        client.headers.update(OPERATOR)
        yield client
    await app.state.engine.dispose()


async def event_types(client: httpx.AsyncClient) -> list[str]:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT type FROM events ORDER BY position"))
        return [row.type for row in rows]


async def publish(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"channel": "youtube", "kind": "video", "published_at": T0, **fields}
    response = await client.post(f"{BASE}/content", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_content_is_published_edited_archived_and_listed(client: httpx.AsyncClient) -> None:
    item = await publish(client, title="Launch", author_id=A)
    assert item["published_at"].startswith("2026-01-10") and item["version"] == 1
    edited = await client.patch(f"{BASE}/content/{item['id']}", json={"title": "Launch day"},
                                headers={"If-Match": '"1"'})
    assert edited.status_code == 200 and edited.headers["ETag"] == '"2"'
    stale = await client.post(f"{BASE}/content/{item['id']}/archive", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    archived = await client.post(f"{BASE}/content/{item['id']}/archive")
    assert archived.json()["archived_at"] is not None
    other = await publish(client, kind="post", channel="telegram")
    active = (await client.get(f"{BASE}/content")).json()["items"]
    assert [i["id"] for i in active] == [other["id"]]
    everything = (await client.get(f"{BASE}/content", params={"status": "all"})).json()
    assert [i["title"] for i in everything["items"]] == ["Launch day", None]
    assert await event_types(client) == [
        "gatherly.content.published", "gatherly.content.updated", "gatherly.content.archived",
        "gatherly.content.published"]


async def test_views_and_a_reimported_counter_snapshot_never_double_count(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    for body in ({"content_id": item["id"]}, {"content_id": item["id"], "member_id": A,
                                               "count": 2}):
        assert (await client.post(f"{BASE}/views", json=body)).status_code == 201
    snapshot = {"content_id": item["id"], "counter": "youtube", "total": 1250,
                "as_of": "2026-02-01T00:00:00+00:00"}
    assert (await client.post(f"{BASE}/views/counters", json=snapshot)).status_code == 201
    again = await client.post(f"{BASE}/views/counters", json=snapshot)
    assert again.status_code == 200 and again.json()["version"] == 1
    older = await client.post(f"{BASE}/views/counters",
                              json={**snapshot, "total": 900, "as_of": T0})
    assert older.status_code == 409 and older.json()["field"] == "as_of"
    later = {**snapshot, "total": 1400, "as_of": "2026-02-02T00:00:00+00:00"}
    assert (await client.post(f"{BASE}/views/counters", json=later)).status_code == 201
    stats = (await client.get(f"{BASE}/content/{item['id']}")).json()["stats"]
    assert stats["views"] == 3 + 1400 and stats["recorded_views"] == 3
    assert (await event_types(client)).count("gatherly.content.views_counted") == 2


async def test_a_second_identical_reaction_is_idempotent_and_removal_is_a_new_version(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    like = {"content_id": item["id"], "member_id": A, "kind": "like"}
    first = await client.post(f"{BASE}/reactions", json=like)
    assert first.status_code == 201 and first.json()["version"] == 1
    second = await client.post(f"{BASE}/reactions", json=like)
    assert second.status_code == 200 and second.json() == first.json()
    removed = await client.delete(f"{BASE}/reactions/{first.json()['id']}")
    assert removed.status_code == 200 and removed.json()["active"] is False
    missing = await client.delete(f"{BASE}/reactions/{first.json()['id']}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    back = await client.post(f"{BASE}/reactions", json=like)
    assert back.status_code == 201 and back.json()["version"] == 3
    assert back.json()["id"] == first.json()["id"]
    stats = (await client.get(f"{BASE}/content/{item['id']}")).json()["stats"]
    assert stats["reactions"] == {"like": 1}
    assert await event_types(client) == [
        "gatherly.content.published", "gatherly.reaction.added", "gatherly.reaction.removed",
        "gatherly.reaction.added"]


async def test_feedback_is_answered_then_resolved_and_listed_oldest_unanswered_first(
    client: httpx.AsyncClient,
) -> None:
    ids = []
    for day in ("03", "01", "02"):
        response = await client.post(f"{BASE}/feedback", json={
            "member_id": A, "about_kind": "community", "channel": "email", "rating": 3,
            "text": f"day {day}", "submitted_at": f"2026-01-{day}T09:00:00+00:00"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    day3, day1, day2 = ids
    early = await client.post(f"{BASE}/feedback/{day1}/resolve")
    assert early.status_code == 422 and "answered before" in early.json()["detail"]
    answered = await client.post(f"{BASE}/feedback/{day1}/answer",
                                 json={"by_member": B, "answer": "thanks!"})
    assert answered.json()["status"] == "answered" and answered.json()["answer"] == "thanks!"
    resolved = await client.post(f"{BASE}/feedback/{day1}/resolve", headers={"If-Match": '"2"'})
    assert resolved.json()["status"] == "resolved" and resolved.json()["answer"] == "thanks!"
    written = await event_types(client)
    late = await client.post(f"{BASE}/feedback/{day1}/answer")
    assert late.status_code == 422 and "resolved" in late.json()["detail"]
    assert late.headers["content-type"] == "application/problem+json"
    assert await event_types(client) == written  # nothing written for the refusal
    await client.post(f"{BASE}/feedback/{day3}/answer")
    order: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{BASE}/feedback", params=params)).json()
        order += [f["id"] for f in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert order == [day2, day3, day1]
    unanswered = (await client.get(f"{BASE}/feedback", params={"status": "submitted"})).json()
    assert [f["id"] for f in unanswered["items"]] == [day2]
    aged = (await client.get(f"{BASE}/feedback", params={
        "submitted_before": "2026-01-02T12:00:00+00:00"})).json()
    assert [f["id"] for f in aged["items"]] == [day2, day1]  # unanswered first, then by age


async def test_introductions_and_thanks_are_recorded_and_listed_by_member(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client)
    made = await client.post(f"{BASE}/introductions",
                             json={"member_a": A, "member_b": B, "by_member": C})
    assert made.status_code == 201
    thanks = await client.post(f"{BASE}/thanks", json={
        "to_member": C, "reason": "for the intro", "about_kind": "content",
        "about_id": item["id"]})
    assert thanks.status_code == 201, thanks.text
    involving_c = (await client.get(f"{BASE}/introductions", params={"member_id": C})).json()
    assert [i["id"] for i in involving_c["items"]] == [made.json()["id"]]
    to_a = (await client.get(f"{BASE}/thanks", params={"member_id": A})).json()
    assert to_a["items"] == []
    assert (await event_types(client))[-2:] == ["gatherly.introduction.made",
                                                "gatherly.thanks.sent"]


async def test_another_community_sees_nothing(client: httpx.AsyncClient) -> None:
    item = await publish(client)
    other = {"X-Gatherly-Community": "c2", "X-Gatherly-Scopes": "read,write"}
    assert (await client.get(f"{BASE}/content/{item['id']}", headers=other)).status_code == 404
    view = await client.post("/v1/communities/c2/views", json={"content_id": item["id"]},
                             headers=other)
    assert view.status_code == 422 and view.json()["field"] == "content_id"


UNKNOWN = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/views", {"content_id": UNKNOWN}, 422, "no content item"),
        ("/reactions", {"content_id": UNKNOWN, "member_id": A, "kind": "like"}, 422,
         "no content item"),
        ("/views/counters", {"content_id": UNKNOWN, "counter": "vk", "total": 1, "as_of": T0},
         422, "no content item"),
        ("/feedback", {"member_id": A, "about_kind": "community", "channel": "email",
                       "text": "hi", "rating": 6}, 422, "between 1 and 5"),
        ("/feedback", {"member_id": A, "about_kind": "content", "about_id": UNKNOWN,
                       "channel": "email", "text": "hi"}, 422, "no content item"),
        ("/introductions", {"member_a": A, "member_b": A, "by_member": B}, 422, "themselves"),
        ("/thanks", {"to_member": A, "by_member": A}, 422, "themselves"),
        ("/content", {"channel": "vk", "kind": "podcast"}, 422, "literal_error"),
        ("/content", {"channel": "vk", "kind": "post", "published_at": "2026-01-01T10:00:00"},
         422, "timezone"),
        ("/content", {"channel": "vk", "kind": "post", "published_at": "2999-01-01T10:00:00Z"},
         422, "future"),
        ("/content", {"channel": "vk", "kind": "post", "surprise": 1}, 422, "extra_forbidden"),
        ("/views", {"content_id": "not-a-uuid"}, 422, "uuid"),
    ],
)
async def test_bad_input_gets_a_problem_naming_it_and_writes_nothing(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, says: str
) -> None:
    response = await client.post(f"{BASE}{path}", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.text
    assert await event_types(client) == []


async def test_answering_resolved_feedback_or_an_unknown_one_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post(f"{BASE}/feedback/{UNKNOWN}/answer")
    assert missing.status_code == 404
    assert (await client.patch(f"{BASE}/content/{UNKNOWN}", json={"title": "x"})).status_code \
        == 404
    assert (await client.get(f"{BASE}/feedback", params={"cursor": "%%%"})).status_code == 400
    assert await event_types(client) == []
