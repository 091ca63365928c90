"""The one API document merged from the services' own; problem bodies for Traefik's errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.edge.app import create_app
from gateway.edge.openapi import merge
from gatherly.settings import Settings
from tests.conftest import free_port


def document(path: str, schema: str) -> dict[str, Any]:
    identity = {"name": "x-gatherly-community", "in": "header", "schema": {"type": "string"}}
    limit = {"name": "limit", "in": "query", "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "paths": {path: {"get": {"parameters": [identity, limit], "responses": {}}},
                  "/healthz": {"get": {"responses": {}}}},
        "components": {"schemas": {schema: {"type": "object"}}},
        "tags": [{"name": schema}],
    }


def test_every_service_path_is_merged_with_the_api_key_scheme_and_no_identity_headers() -> None:
    merged = merge(
        document("/v1/communities", "CommunityPublic"),
        {"members": document("/v1/communities/{community_id}/members", "MemberPublic")},
    )
    assert set(merged["paths"]) == {"/v1/communities", "/v1/communities/{community_id}/members"}
    assert set(merged["components"]["schemas"]) == {"CommunityPublic", "MemberPublic", "Problem"}
    assert merged["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert merged["security"] == [{"apiKey": []}]
    for item in merged["paths"].values():
        assert [p["name"] for p in item["get"]["parameters"]] == ["limit"]


def test_every_operation_declares_the_gateways_own_refusals_as_problems() -> None:
    merged = merge(document("/v1/communities", "CommunityPublic"), {})
    responses = merged["paths"]["/v1/communities"]["get"]["responses"]
    for status in ("401", "403", "429"):
        content = responses[status]["content"]
        assert content == {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}}


async def test_the_gateway_document_lists_the_edge_routes_even_when_a_service_is_down() -> None:
    settings = Settings(postgres_port=free_port(), members_port=free_port(), kpi_port=free_port())
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as c:
        merged = (await c.get("/openapi.json")).json()
        docs = await c.get("/docs")
    assert "/v1/communities/{community_id}/keys" in merged["paths"]
    assert "members" in merged["x-gatherly-unavailable"]
    assert docs.status_code == 200 and "/openapi.json" in docs.text


@pytest.mark.parametrize(("status", "retry"), [(404, None), (413, None), (502, "1"), (504, "1")])
async def test_traefiks_own_errors_get_problem_bodies(status: int, retry: str | None) -> None:
    app = create_app(Settings(postgres_port=free_port()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as c:
        response = await c.post(f"/errors/{status}", params={"url": "/v1/x"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == "/v1/x"
    assert response.headers.get("retry-after") == retry
