"""The webhooks API in-process against real Postgres: subscriptions, secrets, refusals, scope."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings
from services.webhooks.app import create_app
from tests.conftest import fresh_database

ADMIN = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
BASE = "/v1/communities/c1/webhooks"
PUBLIC_URL = "https://93.184.216.34/hooks/gatherly"


@pytest.fixture
async def settings(
    postgres_server: EmbeddedPostgres, nats_server: EmbeddedNats, tmp_path: Path
) -> Settings:
    """Only the webhooks schema: these tests need no other."""
    settings = Settings(data_dir=tmp_path, database_url=await fresh_database(postgres_server),
                        nats_url=nats_server.url)
    await asyncio.to_thread(migrate, settings.database, "webhooks", SCHEMAS["webhooks"])
    return settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as client:
        client.headers.update(ADMIN)
        yield client
    await app.state.engine.dispose()


async def rows(client: httpx.AsyncClient, table: str) -> int:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")))


async def subscribe(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    body = {"url": PUBLIC_URL, "event_types": ["gatherly.member.*"], **fields}
    return await client.post(BASE, json=body)


async def test_a_subscription_shows_its_secret_once(client: httpx.AsyncClient) -> None:
    created = await subscribe(client, description="CRM sync")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["gatherly.member.*"] and body["enabled"] is True
    assert created.headers["Location"] == f"{BASE}/{body['id']}"
    shown = await client.get(f"{BASE}/{body['id']}")
    assert shown.status_code == 200 and "secret" not in shown.json()
    listed = await client.get(BASE)
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]
    assert "secret" not in listed.json()["items"][0]


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://93.184.216.34/hook", "scheme"),
        ("ftp://93.184.216.34/hook", "scheme"),
        ("not a url", "scheme"),
        ("https://user:pw@93.184.216.34/hook", "credentials"),
        ("https://127.0.0.1/hook", "forbidden_address"),
        ("https://localhost/hook", "forbidden_address"),
        ("https://10.0.0.8/hook", "forbidden_address"),
        ("https://169.254.169.254/latest/meta-data", "forbidden_address"),
        ("https://100.64.1.1/hook", "forbidden_address"),
        ("https://[fd00:ec2::254]/", "forbidden_address"),
        ("https://[::ffff:10.0.0.1]/", "forbidden_address"),
        ("https://no-such-host.invalid/hook", "unresolvable"),
    ],
)
async def test_a_forbidden_or_invalid_url_gets_422_and_nothing_is_written(
    client: httpx.AsyncClient, url: str, rule: str
) -> None:
    response = await subscribe(client, url=url)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "url" and response.json()["rule"] == rule
    assert await rows(client, "subscriptions") == 0


@pytest.mark.parametrize(
    ("patterns", "rule"),
    [(["gatherly.nothing.*"], "unknown_type"), (["gatherly.member.joind"], "unknown_type"),
     (["Gatherly member"], "pattern")],
)
async def test_an_unknown_event_type_pattern_gets_422(
    client: httpx.AsyncClient, patterns: list[str], rule: str
) -> None:
    response = await subscribe(client, event_types=patterns)
    assert response.status_code == 422
    assert response.json()["field"] == "event_types" and response.json()["rule"] == rule
    assert await rows(client, "subscriptions") == 0


async def test_an_update_is_checked_like_a_create(client: httpx.AsyncClient) -> None:
    created = (await subscribe(client)).json()
    refused = await client.patch(f"{BASE}/{created['id']}", json={"url": "https://10.1.1.1/x"})
    assert refused.status_code == 422 and refused.json()["rule"] == "forbidden_address"
    changed = await client.patch(
        f"{BASE}/{created['id']}", headers={"If-Match": '"1"'},
        json={"event_types": ["gatherly.event.attended", "*"], "enabled": False},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == PUBLIC_URL and changed.json()["enabled"] is False
    assert changed.headers["ETag"] == '"2"'
    stale = await client.patch(f"{BASE}/{created['id']}", headers={"If-Match": '"1"'},
                               json={"description": "late"})
    assert stale.status_code == 412


async def test_a_rotation_keeps_the_old_secret_signing_for_the_grace_period(
    client: httpx.AsyncClient,
) -> None:
    created = (await subscribe(client)).json()
    rotated = await client.post(f"{BASE}/{created['id']}/rotate-secret",
                                json={"grace_seconds": 3600})
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"]
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    from services.webhooks import views

    async with engine.connect() as conn:
        active = await views.active_secrets(conn, created["id"])
    assert active == [rotated.json()["secret"], created["secret"]]


async def test_webhooks_need_the_admin_scope(client: httpx.AsyncClient) -> None:
    writer = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write"}
    refused = await client.post(BASE, headers=writer,
                                json={"url": PUBLIC_URL, "event_types": ["*"]})
    assert refused.status_code == 403
    assert (await client.get(BASE, headers=writer)).status_code == 403
    assert await rows(client, "subscriptions") == 0


async def test_another_communitys_webhook_is_not_found(client: httpx.AsyncClient) -> None:
    created = (await subscribe(client)).json()
    other = {"X-Gatherly-Community": "c2", "X-Gatherly-Scopes": "read,write,admin"}
    seen = await client.get(f"/v1/communities/c2/webhooks/{created['id']}", headers=other)
    assert seen.status_code == 404
    assert (await client.get(f"{BASE}/{created['id']}", headers=other)).status_code == 404


async def test_a_deleted_subscription_is_gone(client: httpx.AsyncClient) -> None:
    created = (await subscribe(client)).json()
    assert (await client.delete(f"{BASE}/{created['id']}")).status_code == 204
    assert (await client.get(f"{BASE}/{created['id']}")).status_code == 404
    assert (await client.delete(f"{BASE}/{uuid.uuid4()}")).status_code == 404
