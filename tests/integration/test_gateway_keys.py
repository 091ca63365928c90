"""Communities, API keys and forwardAuth in-process against real Postgres, called the way Traefik
calls them: `/auth` first, then the route with the identity headers `/auth` returned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.edge.app import create_app
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings
from tests.conftest import fresh_database

OPERATOR_KEY = "gk_admin_gateway_tests"
IDENTITY = ("x-gatherly-community", "x-gatherly-scopes", "x-gatherly-key-id")


@pytest.fixture
async def settings(postgres_server: EmbeddedPostgres, tmp_path: Path) -> Settings:
    """Only the edge schema, so another service's migration cannot stop these tests."""
    settings = Settings(
        data_dir=tmp_path, database_url=await fresh_database(postgres_server),
        admin_key=OPERATOR_KEY, key_cache_refresh_seconds=0.3,
    )
    await asyncio.to_thread(migrate, settings.database, "edge", SCHEMAS["edge"])
    return settings


class Gateway:
    """Traefik's part, in a few lines: ask /auth, forward with its identity headers or refuse."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")

    async def call(
        self, method: str, path: str, key: str, json: Any = None, **headers: str
    ) -> httpx.Response:
        auth = await self.client.get(
            "/auth",
            headers={"Authorization": f"Bearer {key}", "X-Forwarded-Method": method,
                     "X-Forwarded-Uri": path},
        )
        if auth.status_code != 200:
            return auth
        identity = {name: auth.headers[name] for name in IDENTITY}
        return await self.client.request(method, path, json=json, headers={**headers, **identity})

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.state.engine.dispose()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    gateway = Gateway(create_app(settings))
    yield gateway
    await gateway.close()


async def community(gateway: Gateway, slug: str) -> dict[str, Any]:
    body = {"name": slug.title(), "slug": slug, "time_zone": "Europe/Berlin",
            "custom_channels": ["discord"], "feedback_sla_hours": 24}
    created = await gateway.call("POST", "/v1/communities", OPERATOR_KEY, body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def new_key(gateway: Gateway, community_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("scopes", ["read", "write"])
    created = await gateway.call("POST", f"/v1/communities/{community_id}/keys", OPERATOR_KEY, body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def test_the_operator_creates_lists_and_updates_communities(gateway: Gateway) -> None:
    alumni = await community(gateway, "alumni")
    assert alumni["time_zone"] == "Europe/Berlin" and alumni["version"] == 1
    await community(gateway, "fans")
    listed = (await gateway.call("GET", "/v1/communities?limit=1", OPERATOR_KEY)).json()
    assert [c["slug"] for c in listed["items"]] == ["alumni"] and listed["next_cursor"]
    path = f"/v1/communities/{alumni['id']}"
    stale = await gateway.call("PATCH", path, OPERATOR_KEY, {"name": "X"}, **{"If-Match": '"9"'})
    assert stale.status_code == 412 and stale.headers["etag"] == '"1"'
    renamed = await gateway.call("PATCH", path, OPERATOR_KEY, {"name": "Alumni 2024"},
                                 **{"If-Match": '"1"'})
    assert renamed.status_code == 200 and renamed.json()["version"] == 2
    assert (await gateway.call("GET", path, OPERATOR_KEY)).json()["name"] == "Alumni 2024"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"time_zone": "Mars/Olympus"}, "time_zone"), ({"slug": "Not A Slug"}, "slug"),
     ({"custom_channels": ["vk", "vk"]}, "custom_channels"),
     ({"custom_channels": ["alumni_chat", "telegram"]}, "custom_channels"),
     ({"feedback_sla_hours": 0},
     "feedback_sla_hours"), ({"colour": "red"}, "colour")],
)
async def test_bad_community_input_is_422_naming_the_field(
    gateway: Gateway, change: dict[str, Any], field: str
) -> None:
    body = {"name": "Bad", "slug": "bad", **change}
    response = await gateway.call("POST", "/v1/communities", OPERATOR_KEY, body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {str(part) for e in response.json()["errors"] for part in e["location"]}
    listed = (await gateway.call("GET", "/v1/communities", OPERATOR_KEY)).json()
    assert listed["items"] == []


async def test_a_taken_slug_is_409(gateway: Gateway) -> None:
    await community(gateway, "taken")
    again = await gateway.call("POST", "/v1/communities", OPERATOR_KEY,
                               {"name": "T", "slug": "taken"})
    assert again.status_code == 409 and "taken" in again.json()["detail"]


async def test_a_secret_is_shown_once_and_stored_only_as_a_hash(gateway: Gateway) -> None:
    club = await community(gateway, "club")
    key = await new_key(gateway, club["id"], name="frontend")
    assert key["secret"].startswith(f"gk_live_{key['id']}_")
    listed = (await gateway.call("GET", f"/v1/communities/{club['id']}/keys", OPERATOR_KEY))
    assert [k["id"] for k in listed.json()["items"]] == [key["id"]]
    assert key["secret"] not in listed.text and "secret" not in listed.json()["items"][0]
    async with gateway.app.state.engine.connect() as conn:
        stored = await conn.exec_driver_sql("SELECT secret_hash FROM api_keys")
        assert key["secret"].encode() not in stored.scalar_one()
    mine = await gateway.call("GET", f"/v1/communities/{club['id']}", key["secret"])
    assert mine.status_code == 200 and mine.json()["slug"] == "club"


async def test_another_communitys_key_gets_404_and_changes_nothing(gateway: Gateway) -> None:
    a, b = await community(gateway, "a-side"), await community(gateway, "b-side")
    b_key = await new_key(gateway, b["id"], scopes=["read", "write", "admin"])
    for method, path, body in [
        ("GET", f"/v1/communities/{a['id']}", None),
        ("PATCH", f"/v1/communities/{a['id']}", {"name": "taken over"}),
        ("GET", f"/v1/communities/{a['id']}/keys", None),
        ("POST", f"/v1/communities/{a['id']}/keys", {"scopes": ["admin"]}),
        ("POST", f"/v1/communities/{a['id']}/members", {"channel": "vk"}),
    ]:
        response = await gateway.call(method, path, b_key["secret"], body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await gateway.call("GET", f"/v1/communities/{a['id']}", OPERATOR_KEY)).json() == a
    keys = await gateway.call("GET", f"/v1/communities/{a['id']}/keys", OPERATOR_KEY)
    assert keys.json()["items"] == []
    managing = await gateway.call("GET", "/v1/communities", b_key["secret"])
    assert managing.status_code == 403


async def test_a_key_without_the_scope_gets_403(gateway: Gateway) -> None:
    club = await community(gateway, "scoped")
    reader = await new_key(gateway, club["id"], scopes=["read"])
    base = f"/v1/communities/{club['id']}"
    assert (await gateway.call("GET", f"{base}/members", reader["secret"])).status_code != 403
    for method, path in [("POST", f"{base}/members"), ("GET", f"{base}/keys"), ("PATCH", base)]:
        refused = await gateway.call(method, path, reader["secret"], {})
        assert refused.status_code == 403, (method, path)
        assert "scope" in refused.json()["detail"]


async def test_a_revoked_key_gets_401_within_seconds_on_every_edge(
    gateway: Gateway, settings: Settings
) -> None:
    club = await community(gateway, "revoking")
    key = await new_key(gateway, club["id"])
    path = f"/v1/communities/{club['id']}"
    other_edge = Gateway(create_app(settings))  # another replica: its own cache
    try:
        assert (await other_edge.call("GET", path, key["secret"])).status_code == 200
        revoked = await gateway.call("DELETE", f"{path}/keys/{key['id']}", OPERATOR_KEY)
        assert revoked.status_code == 204
        assert (await gateway.call("GET", path, key["secret"])).status_code == 401
        started = time.monotonic()
        while (await other_edge.call("GET", path, key["secret"])).status_code != 401:
            assert time.monotonic() - started < 3.0, "the other edge still accepts the key"
            await asyncio.sleep(0.05)
    finally:
        await other_edge.close()
    unknown = await gateway.call("DELETE", f"{path}/keys/{key['id']}x", OPERATOR_KEY)
    assert unknown.status_code == 404


async def test_an_expired_key_gets_401(gateway: Gateway) -> None:
    club = await community(gateway, "expiring")
    expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    key = await new_key(gateway, club["id"], expires_at=expires)
    path = f"/v1/communities/{club['id']}"
    assert (await gateway.call("GET", path, key["secret"])).status_code == 200
    await asyncio.sleep(1.1)
    expired = await gateway.call("GET", path, key["secret"])
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    past = await gateway.call("POST", f"{path}/keys", OPERATOR_KEY,
                              {"scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422


async def test_a_key_over_its_rate_gets_429_with_the_ratelimit_headers(gateway: Gateway) -> None:
    club = await community(gateway, "busy")
    key = await new_key(gateway, club["id"], rate_per_second=0.5, burst=2)
    path = f"/v1/communities/{club['id']}"
    answers = [await gateway.call("GET", path, key["secret"]) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    limited = answers[2]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["ratelimit-policy"] == '"per-key";q=2;w=4'
    assert limited.headers["ratelimit"] == '"per-key";r=0;t=2'
    operator = [await gateway.call("GET", path, OPERATOR_KEY) for _ in range(5)]
    assert {a.status_code for a in operator} == {200}


@pytest.mark.parametrize("secret", ["gk_live_0123456789abcdef_" + "A" * 43, "nonsense"])
async def test_an_unknown_key_gets_401(gateway: Gateway, secret: str) -> None:
    response = await gateway.call("GET", "/v1/communities/x/members", secret)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
