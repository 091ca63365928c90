"""Idempotency-Key on POST, end to end in a service app against real Postgres: the first answer
replayed, another body refused, a request still running refused, answers kept 24 hours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings
from gatherly.web import install_service_basics
from services.members.app import create_app
from tests.conftest import fresh_database
from tests.helpers import eventually

IDENTITY = {
    "X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write", "X-Gatherly-Key-Id": "k1",
}
BASE = "/v1/communities/c1/members"


@pytest.fixture
async def settings(
    postgres_server: EmbeddedPostgres, tmp_path: Path
) -> AsyncIterator[Settings]:
    """Only the schemas these tests use, so another service's migration cannot stop them."""
    settings = Settings(data_dir=tmp_path, database_url=await fresh_database(postgres_server))
    for schema in ("members", "edge"):
        await asyncio.to_thread(migrate, settings.database, schema, SCHEMAS[schema])
    yield settings


@pytest.fixture
async def members(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://members") as client:
        client.headers.update(IDENTITY)
        yield client
    await app.state.engine.dispose()


async def event_count(client: httpx.AsyncClient) -> int:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events")))


async def test_a_retried_post_gets_the_first_answer_and_writes_once(
    members: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "join-1"}
    first = await members.post(BASE, json={"channel": "vk"}, headers=headers)
    again = await members.post(BASE, json={"channel": "vk"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    for header in ("location", "etag", "content-type"):
        assert again.headers[header] == first.headers[header]
    assert again.headers["idempotency-replayed"] == "true"
    assert "idempotency-replayed" not in first.headers
    assert await event_count(members) == 1


async def test_the_same_key_with_another_body_is_422_and_writes_nothing(
    members: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "join-2"}
    assert (await members.post(BASE, json={"channel": "vk"}, headers=headers)).status_code == 201
    other = await members.post(BASE, json={"channel": "email"}, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in other.json()["detail"]
    assert await event_count(members) == 1


async def test_keys_are_scoped_to_the_api_key_and_the_community(
    members: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "shared"}
    mine = await members.post(BASE, json={"channel": "vk"}, headers=headers)
    other_key = {**headers, "X-Gatherly-Key-Id": "k2"}
    theirs = await members.post(BASE, json={"channel": "vk"}, headers=other_key)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert await event_count(members) == 2


async def test_posts_without_the_header_are_not_deduplicated(members: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await members.post(BASE, json={"channel": "vk"})).status_code == 201
    assert await event_count(members) == 2


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_a_malformed_key_is_400(members: httpx.AsyncClient, key: str) -> None:
    response = await members.post(BASE, json={"channel": "vk"}, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert await event_count(members) == 0


async def test_an_answer_older_than_the_retention_no_longer_replays(
    members: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "old"}
    first = await members.post(BASE, json={"channel": "vk"}, headers=headers)
    engine = members._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '23 hours'")
        )
    kept = await members.post(BASE, json={"channel": "vk"}, headers=headers)
    assert kept.json() == first.json()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        )
    fresh = await members.post(BASE, json={"channel": "vk"}, headers=headers)
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]


def gated_app(settings: Settings, gate: asyncio.Event, calls: list[int]) -> FastAPI:
    """A service app (install_service_basics) whose POST waits at a gate; 500 when asked."""
    engine = create_engine(settings.database, "members")
    app = FastAPI()
    app.state.engine = engine
    install_service_basics(app, settings, engine)

    @app.post("/v1/communities/{community_id}/things", status_code=201)
    async def create(community_id: str, request: Request) -> dict[str, int]:
        calls.append(1)
        await gate.wait()
        if (await request.json()).get("fail"):
            raise RuntimeError("the handler failed")
        return {"call": len(calls)}

    return app


async def test_a_duplicate_while_the_first_runs_is_409_and_runs_nothing(
    settings: Settings,
) -> None:
    gate, calls = asyncio.Event(), []  # type: ignore[var-annotated]
    app = gated_app(settings, gate, calls)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        client.headers.update({**IDENTITY, "Idempotency-Key": "slow"})
        url = "/v1/communities/c1/things"
        first = asyncio.create_task(client.post(url, json={"n": 1}))
        await eventually(lambda: asyncio.sleep(0, bool(calls)), within=5)
        duplicate = await client.post(url, json={"n": 1})
        assert duplicate.status_code == 409
        assert duplicate.headers["content-type"] == "application/problem+json"
        assert duplicate.headers["retry-after"] == "1"
        gate.set()
        assert (await first).status_code == 201
        replayed = await client.post(url, json={"n": 1})
        assert replayed.json() == {"call": 1} and len(calls) == 1
    await app.state.engine.dispose()


async def test_a_failed_request_is_not_kept_so_a_retry_runs_again(settings: Settings) -> None:
    gate, calls = asyncio.Event(), []  # type: ignore[var-annotated]
    gate.set()
    app = gated_app(settings, gate, calls)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        client.headers.update({**IDENTITY, "Idempotency-Key": "flaky"})
        url = "/v1/communities/c1/things"
        assert (await client.post(url, json={"fail": True})).status_code == 500
        retried = await client.post(url, json={"fail": True})
        assert retried.status_code == 500 and len(calls) == 2
    await app.state.engine.dispose()
