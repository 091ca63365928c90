"""The edge app's forwardAuth logic, called the way Traefik calls it (through ASGI, no server)."""

from __future__ import annotations

import httpx
import pytest

from gateway.edge.app import create_app
from gatherly.settings import Settings
from tests.conftest import free_port

KEY = "gk_admin_test-key-0123456789"


async def get(
    path: str,
    headers: dict[str, str] | None = None,
    admin_key: str | None = KEY,
    method: str = "GET",
) -> httpx.Response:
    # A database port nothing listens on: the operator key needs no key store.
    app = create_app(Settings(admin_key=admin_key, postgres_port=free_port()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        return await client.request(method, path, headers=headers or {})


def auth_headers(uri: str, key: str = KEY, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {key}", "X-Forwarded-Uri": uri}


def assert_unauthorized(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "x-gatherly-community" not in response.headers
    body: dict[str, object] = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    return body


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_operator_key_is_accepted_for_any_community(method: str) -> None:
    response = await get("/auth", auth_headers("/v1/communities/c1/members?limit=5"), method=method)
    assert response.status_code == 200
    assert response.headers["x-gatherly-community"] == "c1"
    assert response.headers["x-gatherly-scopes"] == "read,write,admin"
    assert response.headers["x-gatherly-key-id"] == "operator"
    assert response.content == b""


async def test_scheme_is_case_insensitive_and_community_is_decoded() -> None:
    response = await get("/auth", auth_headers("/v1/communities/%41bc/kpis", scheme="bearer"))
    assert response.status_code == 200
    assert response.headers["x-gatherly-community"] == "Abc"


async def test_path_without_community_gives_an_empty_community() -> None:
    response = await get("/auth", auth_headers("/v1/communities"))
    assert response.status_code == 200
    assert response.headers["x-gatherly-community"] == ""


@pytest.mark.parametrize("community", ["a%0d%0aX-Evil:%201", "a%2Fb", "a%20b", "%C3%A9"])
async def test_community_that_cannot_travel_in_a_header_is_not_found(community: str) -> None:
    response = await get("/auth", auth_headers(f"/v1/communities/{community}/members"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "x-gatherly-community" not in response.headers


async def test_missing_key_is_401_problem() -> None:
    response = await get("/auth", {"X-Forwarded-Uri": "/v1/communities/c1/members"})
    body = assert_unauthorized(response)
    assert "error=" not in response.headers["www-authenticate"]
    assert body["type"] == "about:blank"


@pytest.mark.parametrize(
    "headers",
    [
        auth_headers("/v1/communities/c1/members", key="gk_admin_wrong"),
        auth_headers("/v1/communities/c1/members", key=KEY[:-1]),
        auth_headers("/v1/communities/c1/members", key=KEY + "x"),
        auth_headers("/v1/communities/c1/members", scheme="Basic"),
        {"Authorization": "Bearer", "X-Forwarded-Uri": "/v1/communities/c1/members"},
    ],
)
async def test_bad_key_is_401_problem(headers: dict[str, str]) -> None:
    assert_unauthorized(await get("/auth", headers))


async def test_no_operator_key_configured_rejects_every_key() -> None:
    response = await get("/auth", auth_headers("/v1/communities/c1/members"), admin_key=None)
    assert_unauthorized(response)


async def test_health_and_readiness_without_the_key_store() -> None:
    healthz = await get("/healthz")
    assert healthz.status_code == 200
    assert healthz.json() == {"status": "ok"}
    # The settings point at no database: the edge cannot know any community key, so not ready.
    readyz = await get("/readyz")
    assert readyz.status_code == 503
    assert readyz.json()["checks"]["database"].startswith("unavailable")


async def test_unrouted_v1_path_is_404_problem() -> None:
    response = await get("/v1/nothing/here", method="POST")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_operator_is_let_through_without_settings_when_communities_cannot_be_read() -> None:
    # Nothing listens on the database port: the services then use their defaults (UTC, 24 h).
    response = await get("/auth", auth_headers("/v1/communities/c1/kpis"))
    assert response.status_code == 200
    assert "x-gatherly-community-time-zone" not in response.headers
    assert "x-gatherly-community-feedback-sla-hours" not in response.headers


async def test_a_fault_in_auth_answers_500_problem_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`/auth` is answered ahead of the app's middleware stack: a bug still gets a problem
    answer, never a dropped connection, and the RED metrics still count it under `/auth`."""
    from gatherly.metrics import HTTP_REQUESTS

    app = create_app(Settings(admin_key=KEY, postgres_port=free_port()))

    async def broken(key_id: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.keys, "get", broken)
    counted = HTTP_REQUESTS.labels("GET", "/auth", "500")
    before = counted._value.get()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://edge") as client:
        response = await client.get("/auth", headers=auth_headers(
            "/v1/communities/c1/members", key="gk_live_0123456789abcdef_" + "s" * 40))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 500
    assert counted._value.get() == before + 1
