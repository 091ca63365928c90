"""The members API in-process against real Postgres: joins, leaves, versions, pages, bad input."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gatherly.bus import Bus
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings
from services.members.app import create_app
from tests.conftest import fresh_database

OPERATOR = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
BASE = "/v1/communities/c1/members"


@pytest.fixture
async def settings(
    postgres_server: EmbeddedPostgres, nats_server: EmbeddedNats, tmp_path: Path
) -> AsyncIterator[Settings]:
    """Like the shared fixture, but migrating only the members schema: these tests need no
    other, and a half-finished migration elsewhere in the tree cannot break them."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=await fresh_database(postgres_server),
        nats_url=nats_server.url,
        stream_name=f"T{uuid.uuid4().hex[:12].upper()}",
        relay_poll_seconds=0.05,
    )
    await asyncio.to_thread(migrate, settings.database, "members", SCHEMAS["members"])
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="test")
    await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
    try:
        yield settings
    finally:
        await bus.delete_stream()
        await bus.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"max_body_bytes": 10_000}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://members") as client:
        client.headers.update(OPERATOR)
        yield client
    await app.state.engine.dispose()


async def event_count(client: httpx.AsyncClient) -> int:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events")))


async def test_a_join_answers_201_with_the_member_and_its_version(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(BASE, json={"channel": "telegram", "external_ref": "tg-1"})
    assert response.status_code == 201, response.text
    member = response.json()
    assert member["status"] == "active" and member["channel"] == "telegram"
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"{BASE}/{member['id']}"
    shown = await client.get(f"{BASE}/{member['id']}")
    assert shown.json() == member


async def test_a_leave_with_a_stale_version_gets_412_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    member = (await client.post(BASE, json={"channel": "vk"})).json()
    stale = await client.post(f"{BASE}/{member['id']}/leave", headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.headers["ETag"] == '"1"'
    left = await client.post(
        f"{BASE}/{member['id']}/leave", json={"reason": "moved"}, headers={"If-Match": '"1"'}
    )
    assert left.status_code == 200 and left.json()["status"] == "left"
    again = await client.post(f"{BASE}/{member['id']}/leave")
    assert again.status_code == 422 and "already left" in again.json()["detail"]
    assert await event_count(client) == 2


async def test_members_page_through_a_stable_cursor(client: httpx.AsyncClient) -> None:
    ids = [(await client.post(BASE, json={"channel": "email"})).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(BASE, params=params)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids


async def test_another_community_sees_nothing(client: httpx.AsyncClient) -> None:
    member = (await client.post(BASE, json={"channel": "vk"})).json()
    other = {"X-Gatherly-Community": "c2", "X-Gatherly-Scopes": "read,write"}
    response = await client.get(f"{BASE}/{member['id']}", headers=other)
    assert response.status_code == 404
    assert (await client.get(BASE, headers={"X-Gatherly-Community": "", "X-Gatherly-Scopes": ""})
            ).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"channel": "telegram"', 422, "json_invalid"),
        (b'{"channel": 5}', 422, "string_type"),
        (b"{}", 422, "missing"),
        (b'{"channel": "telegram", "joined_at": "2026-01-01T10:00:00"}', 422, "timezone"),
        (b'{"channel": "telegram", "surprise": 1}', 422, "extra_forbidden"),
        (b'{"channel": "Not A Channel!"}', 422, "unknown channel"),
        (b'{"channel": "vk", "email": "ann.example.org"}', 422, "email"),
        (b'{"channel": "vk", "email": "ann@"}', 422, "email"),
        (b'{"channel": "vk", "invited_by": "00000000-0000-0000-0000-000000000000"}', 422,
         "referrer"),
        (b'{"channel": "vk", "external_ref": "' + b"x" * 20_000 + b'"}', 413, "exceeds"),
        # Text Postgres cannot store: found by schemathesis, NUL was a 500.
        (b'{"channel": "vk", "external_ref": "a\\u0000b"}', 422, "NUL"),
        (b'{"channel": "vk", "display_name": "a\\u0000b"}', 422, "NUL"),
        (b'{"channel": "vk", "display_name": "a\\udbefb"}', 422, "unicode"),
    ],
)
async def test_bad_input_gets_a_problem_and_writes_nothing(
    client: httpx.AsyncClient, body: bytes, status: int, says: str
) -> None:
    response = await client.post(BASE, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"]
    assert says in response.text
    assert await event_count(client) == 0


async def test_an_unknown_member_or_a_bad_cursor_is_a_4xx_problem(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post(f"{BASE}/00000000-0000-0000-0000-000000000001/leave")
    assert missing.status_code == 404
    assert (await client.get(f"{BASE}/not-a-uuid")).status_code == 422
    bad_cursor = await client.get(BASE, params={"cursor": "%%%"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.headers["content-type"] == "application/problem+json"


async def test_a_read_after_a_profile_update_gives_the_etag_the_next_update_needs(
    client: httpx.AsyncClient,
) -> None:
    """GET → PATCH → GET → PATCH is how a frontend edits a profile twice; the second GET must
    give the ETag the PATCH answered, or every later PATCH with it is a 412."""
    member = (await client.post(BASE, json={"channel": "vk", "city": "Riga"})).json()
    url = f"{BASE}/{member['id']}"
    patched = await client.patch(url, json={"city": "Oslo"}, headers={"If-Match": '"1"'})
    assert patched.status_code == 200 and patched.headers["etag"] == '"2"'
    read = await client.get(url)
    assert read.json()["city"] == "Oslo"
    assert read.headers["etag"] == patched.headers["etag"]
    assert read.json()["version"] == 2
    again = await client.patch(
        url, json={"city": "Kyiv"}, headers={"If-Match": read.headers["etag"]}
    )
    assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    "payload", [b'{"after": 9223372036854775808}', b'{"after": "x"}', b'{"after": null}']
)
async def test_a_cursor_of_the_right_shape_but_a_foreign_value_is_a_400_problem(
    client: httpx.AsyncClient, payload: bytes
) -> None:
    cursor = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    response = await client.get(BASE, params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"



async def test_a_join_leave_or_rejoin_dated_in_the_future_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """A rejoin dated 2099 had been taken, and the KPI counted the member back from then on."""
    future = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    joined = await client.post(BASE, json={"channel": "vk", "joined_at": future})
    assert joined.status_code == 422 and joined.json()["rule"] == "joined_at"
    member = (await client.post(BASE, json={"channel": "vk"})).json()
    url = f"{BASE}/{member['id']}"
    left = await client.post(f"{url}/leave", json={"left_at": future})
    assert left.status_code == 422 and left.json()["rule"] == "left_at"
    assert (await client.post(f"{url}/leave")).status_code == 200
    back = await client.post(f"{url}/rejoin", json={"channel": "vk", "rejoined_at": future})
    assert back.status_code == 422 and back.json()["rule"] == "rejoined_at"
    read = (await client.get(url)).json()
    assert (read["status"], read["version"]) == ("left", 2)


async def test_if_match_star_updates_any_version_and_a_weak_etag_never_matches(
    client: httpx.AsyncClient,
) -> None:
    """RFC 9110 §13.1.1: `*` matches a resource that exists; If-Match compares strongly."""
    member = (await client.post(BASE, json={"channel": "vk"})).json()
    url = f"{BASE}/{member['id']}"
    weak = await client.patch(url, json={"city": "Oslo"}, headers={"If-Match": 'W/"1"'})
    assert weak.status_code == 412
    assert weak.headers["content-type"] == "application/problem+json"
    star = await client.patch(url, json={"city": "Oslo"}, headers={"If-Match": "*"})
    assert star.status_code == 200 and star.headers["etag"] == '"2"'
    absent = await client.patch(url, json={"city": "Riga"})
    assert absent.status_code == 428
    assert (await client.get(url)).json()["city"] == "Oslo"


async def test_a_name_prefix_finds_a_name_that_starts_with_a_non_ascii_capital(
    client: httpx.AsyncClient,
) -> None:
    """`q` is 'name or e-mail prefix, any case': Python lower-cases the prefix, so the stored
    name must be compared lower-cased the same way (a C-collation lower() leaves a Cyrillic
    capital as it is)."""
    name = "\u041c\u0430\u0440\u0438\u044f"  # Maria in Cyrillic
    maria = (await client.post(BASE, json={"channel": "vk", "display_name": name})).json()
    for prefix in (name, name.lower(), name[:3], name[:3].upper()):
        found = (await client.get(BASE, params={"q": prefix})).json()["items"]
        assert [m["id"] for m in found] == [maria["id"]], prefix
