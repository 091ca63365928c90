"""Through the running system: every route of the merged API document, tried with another
community's key, answers 404 and changes nothing; Traefik's own answers are problem+json too."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from bench.system import RunningSystem
from gatherly.registry import SCHEMAS

pytestmark = pytest.mark.e2e

NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"
PARAM = re.compile(r"\{([^}]+)\}")
METHODS = ("get", "head", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    cors = {"GATHERLY_CORS_ORIGINS": '["https://app.example"]'}
    with RunningSystem(tmp_path_factory.mktemp("gatherly"), **cors) as running:
        yield running


def community_with_key(client: httpx.Client, slug: str, **limits: Any) -> tuple[str, str, str]:
    created = client.post("/v1/communities", json={"name": slug, "slug": slug})
    assert created.status_code == 201, created.text
    community = created.json()["id"]
    body = {"scopes": ["read", "write", "admin"], "rate_per_second": 1000, "burst": 1000, **limits}
    key = client.post(f"/v1/communities/{community}/keys", json=body)
    assert key.status_code == 201, key.text
    return community, key.json()["id"], key.json()["secret"]


def merged_document(client: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        document: dict[str, Any] = client.get("/openapi.json").json()
        if "x-gatherly-unavailable" not in document or time.monotonic() > deadline:
            assert "x-gatherly-unavailable" not in document, document["x-gatherly-unavailable"]
            return document
        time.sleep(0.5)


# Partner platforms push facts here; they authenticate with a signature, not an API key.
SIGNED_BY_THE_PLATFORM = {"/v1/communities/{community_id}/inbound/{source}"}


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        if "{community_id}" in path
        for method in item
        if method in METHODS
    ]


def fill(path: str, community: str, ids: dict[str, str]) -> str:
    return PARAM.sub(
        lambda m: community if m.group(1) == "community_id" else ids.get(m.group(1), NO_SUCH_ID),
        path,
    )


async def stored_rows(system: RunningSystem) -> dict[str, int]:
    """Every event in every schema, and every community and key: what a write would change."""
    conn = await asyncpg.connect(system.postgres_url)
    try:
        counts = {s: await conn.fetchval(f"SELECT count(*) FROM {s}.events") for s in SCHEMAS}
        for table in ("communities", "api_keys"):
            counts[table] = await conn.fetchval(f"SELECT count(*) FROM edge.{table}")
        revoked = "SELECT count(*) FROM edge.api_keys WHERE revoked_at IS NOT NULL"
        counts["revoked"] = await conn.fetchval(revoked)
        return counts
    finally:
        await conn.close()


def rows(system: RunningSystem) -> dict[str, int]:
    return asyncio.run(stored_rows(system))


def test_another_communitys_key_gets_404_on_every_route_and_changes_nothing(
    system: RunningSystem,
) -> None:
    with httpx.Client(base_url=system.gateway, headers=system.headers, timeout=15) as operator:
        a, a_key_id, a_secret = community_with_key(operator, "iso-a")
        b, _, b_secret = community_with_key(operator, "iso-b")
        joined = operator.post(f"/v1/communities/{a}/members", json={"channel": "vk"},
                               headers={"Authorization": f"Bearer {a_secret}"})
        assert joined.status_code == 201, joined.text
        ids = {"member_id": joined.json()["id"], "key_id": a_key_id, "source": "no-such-source"}
        document = merged_document(operator)
        a_before = operator.get(f"/v1/communities/{a}").json()
    routes = operations(document)
    assert ("POST", "/v1/communities/{community_id}/members") in routes
    assert ("DELETE", "/v1/communities/{community_id}/keys/{key_id}") in routes
    before = rows(system)
    intruder = {"Authorization": f"Bearer {b_secret}"}
    with httpx.Client(base_url=system.gateway, headers=intruder, timeout=15) as client:
        for method, path in routes:
            # A's community in the path: refused at the gateway, whatever the route.
            response = client.request(method, fill(path, a, ids), json={})
            if path in SIGNED_BY_THE_PLATFORM:
                # No API key here: the delivery's signature is the credential, and it is missing.
                assert response.status_code in (401, 404), (method, path, response.text)
                continue
            assert response.status_code == 404, (method, path, response.text)
            if method != "HEAD":
                assert response.headers["content-type"] == "application/problem+json"
            # B's own community with A's ids: the service must not find them. Its own checks
            # (body, If-Match) may refuse first; any 4xx will do, the stored rows are the proof.
            if set(PARAM.findall(path)) - {"community_id"}:
                mixed = client.request(method, fill(path, b, ids), json={},
                                       headers={"If-Match": '"1"'})
                assert 400 <= mixed.status_code < 500, (method, path, mixed.text)
        assert client.get(f"/v1/communities/{b}/members/{ids['member_id']}").status_code == 404
    assert rows(system) == before
    with httpx.Client(base_url=system.gateway, headers=system.headers, timeout=15) as operator:
        assert operator.get(f"/v1/communities/{a}").json() == a_before


def test_traefiks_own_answers_are_problems_and_keep_the_rate_limit_headers(
    system: RunningSystem,
) -> None:
    with httpx.Client(base_url=system.gateway, headers=system.headers, timeout=15) as client:
        unknown = client.get("/nowhere/at/all")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        oversized = client.post("/v1/communities/x/members", content=b"x" * 5_000_000,
                                headers={"Content-Type": "application/json"})
        assert oversized.status_code == 413
        assert oversized.headers["content-type"] == "application/problem+json"
        preflight = client.options(
            "/v1/communities/x/members",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        community, _, secret = community_with_key(client, "limited", rate_per_second=0.01, burst=1)
        keyed = {"Authorization": f"Bearer {secret}"}
        first = client.get(f"/v1/communities/{community}/members", headers=keyed)
        limited = client.get(f"/v1/communities/{community}/members", headers=keyed)
    assert first.status_code == 200, first.text
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-policy"].startswith('"per-key";q=1;')
    assert limited.headers["ratelimit"].startswith('"per-key";r=0;')
