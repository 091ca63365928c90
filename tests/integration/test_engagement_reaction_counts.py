"""A platform's anonymous reaction counts through the engagement API (real Postgres): the latest
snapshot per (content, counter, kind) replaces earlier ones, the same again records nothing, an
older one is refused, and bad input writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.integration.test_engagement_api import BASE, T0, client, event_types, publish

__all__ = ["client"]  # the fixture, shared with the engagement API tests
LATER = "2026-02-01T00:00:00+00:00"


async def count(client: httpx.AsyncClient, content_id: str, **fields: Any) -> httpx.Response:
    body = {"counter": "telegram", "kind": "like", "total": 5, "as_of": LATER, **fields}
    return await client.post(f"{BASE}/content/{content_id}/reaction-counts", json=body)


async def test_a_later_reaction_count_replaces_an_earlier_one(client: httpx.AsyncClient) -> None:
    item = await publish(client, channel="telegram", kind="post")
    first = await count(client, item["id"])
    assert first.status_code == 201, first.text
    assert first.json()["id"] == str(uuid.uuid5(uuid.UUID(item["id"]), "telegram:like"))
    again = await count(client, item["id"])
    assert again.status_code == 200 and again.json()["version"] == 1
    later = await count(client, item["id"], total=3, as_of="2026-02-02T00:00:00+00:00")
    assert later.status_code == 201 and later.json()["version"] == 2
    assert (await count(client, item["id"], kind="love", total=2)).status_code == 201
    stats = (await client.get(f"{BASE}/content/{item['id']}")).json()["stats"]
    assert {k: v["total"] for k, v in stats["reaction_counters"]["telegram"].items()} == {
        "like": 3, "love": 2}
    assert stats["reactions"] == {}  # members' own reactions are apart
    assert (await event_types(client)).count("gatherly.content.reactions_counted") == 3


async def test_an_older_or_conflicting_reaction_count_is_409_and_records_nothing(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client, channel="telegram", kind="post")
    assert (await count(client, item["id"])).status_code == 201
    for older in ({"as_of": T0, "total": 9}, {"total": 6}):
        refused = await count(client, item["id"], **older)
        assert refused.status_code == 409 and refused.json()["field"] == "as_of"
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await event_types(client)).count("gatherly.content.reactions_counted") == 1


async def test_bad_reaction_counts_name_the_field_and_write_nothing(
    client: httpx.AsyncClient,
) -> None:
    item = await publish(client, channel="telegram", kind="post")
    cases = [
        (item["id"], {"total": -1}, 422, "total"),
        (item["id"], {"as_of": "2025-01-01T00:00:00+00:00"}, 422, "before the publication"),
        (item["id"], {"as_of": "2999-01-01T00:00:00+00:00"}, 422, "future"),
        (item["id"], {"as_of": "2026-02-01T00:00:00"}, 422, "timezone"),
        (item["id"], {"kind": "Not A Kind"}, 422, "kind"),
        (str(uuid.uuid4()), {}, 422, "no content item"),
    ]
    for content_id, change, status, reason in cases:
        response = await count(client, content_id, **change)
        assert response.status_code == status and reason in response.text, response.text
    assert await event_types(client) == ["gatherly.content.published"]
