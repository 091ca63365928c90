"""Inbound deliveries end to end in-process, against real Postgres: the inbound app dispatches to
the members, events and engagement apps through httpx ASGI transports."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gatherly.inbound import sign_standard_webhook
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings, to_libpq_url
from services.engagement.app import create_app as engagement_app
from services.events.app import create_app as events_app
from services.inbound.app import create_app as inbound_app
from services.members.app import create_app as members_app
from tests.conftest import fresh_database

ADMIN = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
TG_TOKEN = "tg-token_1"
OWNERS = ("members", "events", "engagement")


class Flaky(httpx.AsyncBaseTransport):
    """Refuses the first `failures` requests as if the service were down, then passes them on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures > 0:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def settings(
    postgres_server: EmbeddedPostgres, nats_server: EmbeddedNats, tmp_path: Path
) -> Settings:
    settings = Settings(data_dir=tmp_path, database_url=await fresh_database(postgres_server),
                        nats_url=nats_server.url)
    for schema in (*OWNERS, "inbound"):
        await asyncio.to_thread(migrate, settings.database, schema, SCHEMAS[schema])
    return settings


class System:
    def __init__(self, settings: Settings, flaky_engagement: int = 0) -> None:
        self.owners = {"members": members_app(settings), "events": events_app(settings),
                       "engagement": engagement_app(settings)}
        transports: dict[str, httpx.AsyncBaseTransport] = {
            name: httpx.ASGITransport(app=app) for name, app in self.owners.items()}
        self.engagement = Flaky(transports["engagement"], flaky_engagement)
        transports["engagement"] = self.engagement
        self.inbound = inbound_app(settings, transports)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.inbound),
                                        base_url="http://inbound")
        self.url = to_libpq_url(settings.database)

    async def close(self) -> None:
        await self.client.aclose()
        await self.inbound.state.dispatcher.close()
        for app in (*self.owners.values(), self.inbound):
            await app.state.engine.dispose()

    async def source(self, name: str, body: dict[str, Any]) -> None:
        response = await self.client.put(f"/v1/communities/c1/inbound-sources/{name}",
                                         json=body, headers=ADMIN)
        assert response.status_code == 201, response.text

    async def facts(self) -> dict[str, list[str]]:
        """Every event type each owning service has recorded, in order."""
        conn = await asyncpg.connect(self.url)
        try:
            return {owner: [r["type"] for r in await conn.fetch(
                f"SELECT type FROM {owner}.events ORDER BY position")] for owner in OWNERS}
        finally:
            await conn.close()

    async def signed(self, body: Any, webhook_id: str, secret: str = SECRET,
                     moment: datetime | None = None) -> httpx.Response:
        raw = json.dumps(body).encode()
        moment = moment or datetime.now(UTC)
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(int(moment.timestamp())),
                   "webhook-signature": sign_standard_webhook(secret, webhook_id, moment, raw),
                   "content-type": "application/json"}
        return await self.client.post("/v1/communities/c1/inbound/crm", content=raw,
                                      headers=headers)

    async def telegram(self, update: dict[str, Any], token: str = TG_TOKEN) -> httpx.Response:
        return await self.client.post("/v1/communities/c1/inbound/tg", json=update,
                                      headers={"X-Telegram-Bot-Api-Secret-Token": token})

    async def vk(self, event: dict[str, Any]) -> httpx.Response:
        return await self.client.post("/v1/communities/c1/inbound/vk", json=event)


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    system = System(settings)
    await system.source("crm", {"kind": "standard", "secrets": [SECRET, OLD_SECRET]})
    await system.source("tg", {"kind": "telegram", "secrets": [TG_TOKEN]})
    await system.source("vk", {"kind": "vk", "secrets": ["s3cret"], "confirmation": "a1b2c3"})
    yield system
    await system.close()


def crm_batch() -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    post = {"channel": "website", "external_ref": "blog/42"}
    ann = {"channel": "website", "external_ref": "crm-ann"}
    return {"commands": [
        {"op": "join", "channel": "website", "external_ref": "crm-ann", "joined_at": now},
        {"op": "publish_content", "content_ref": post, "kind": "article", "published_at": now},
        {"op": "add_reaction", "content_ref": post, "member_ref": ann, "kind": "like",
         "at": now},
        {"op": "view", "content_ref": post, "member_ref": ann, "viewed_at": now},
    ]}


async def test_a_signed_batch_records_each_fact_in_its_owning_service(system: System) -> None:
    response = await system.signed(crm_batch(), "msg_batch_1")
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == 4
    facts = await system.facts()
    assert facts["members"] == ["gatherly.member.joined"]
    assert facts["engagement"] == ["gatherly.content.published", "gatherly.reaction.added",
                                   "gatherly.content.viewed"]


async def test_a_replayed_delivery_records_nothing_twice(system: System) -> None:
    first = await system.signed(crm_batch(), "msg_replayed")
    again = await system.signed(crm_batch(), "msg_replayed")
    assert first.status_code == again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["parts"]["members"]["members"] == first.json()["parts"]["members"][
        "members"]
    facts = await system.facts()
    assert len(facts["members"]) == 1 and len(facts["engagement"]) == 3


async def test_a_single_command_signed_with_a_secret_being_rotated_out(system: System) -> None:
    command = {"op": "join", "channel": "website", "external_ref": "crm-bob"}
    response = await system.signed(command, "msg_single", secret=OLD_SECRET)
    assert response.status_code == 200, response.text
    assert (await system.facts())["members"] == ["gatherly.member.joined"]


async def test_a_bad_signature_is_401_and_records_nothing(system: System) -> None:
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    response = await system.signed(crm_batch(), "msg_forged", secret=other)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert await system.facts() == {owner: [] for owner in OWNERS}


async def test_a_stale_timestamp_is_401_and_records_nothing(system: System) -> None:
    stale = datetime.fromtimestamp(time.time() - 600, tz=UTC)
    response = await system.signed(crm_batch(), "msg_stale", moment=stale)
    assert response.status_code == 401 and "from now" in response.json()["detail"]
    assert await system.facts() == {owner: [] for owner in OWNERS}


async def test_a_malformed_command_is_422_and_nothing_is_written(system: System) -> None:
    batch = crm_batch()
    batch["commands"].append({"op": "add_reaction", "content_id": "not-a-uuid",
                              "member_id": str(uuid.uuid4()), "kind": "like"})
    response = await system.signed(batch, "msg_malformed")
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"][0] == 4
    assert await system.facts() == {owner: [] for owner in OWNERS}


async def test_a_refused_fact_leaves_nothing_of_its_part_written(system: System) -> None:
    now = datetime.now(UTC).isoformat()
    batch = {"commands": [
        {"op": "publish_content", "content_ref": {"channel": "website", "external_ref": "p"},
         "published_at": now},
        {"op": "view", "content_id": str(uuid.uuid4()), "viewed_at": now},
    ]}
    response = await system.signed(batch, "msg_refused")
    assert response.status_code == 422
    assert response.json()["part"] == "engagement"
    assert (await system.facts())["engagement"] == []


async def test_a_part_that_fails_answers_503_and_the_retry_records_each_fact_once(
    settings: Settings,
) -> None:
    system = System(settings, flaky_engagement=1)
    try:
        await system.source("crm", {"kind": "standard", "secrets": [SECRET]})
        failed = await system.signed(crm_batch(), "msg_retried")
        assert failed.status_code == 503 and failed.json()["part"] == "engagement"
        assert (await system.facts())["members"] == ["gatherly.member.joined"]
        retried = await system.signed(crm_batch(), "msg_retried")
        assert retried.status_code == 200, retried.text
        assert retried.json()["parts"]["members"]["replayed"] is True
        facts = await system.facts()
        assert len(facts["members"]) == 1 and len(facts["engagement"]) == 3
    finally:
        await system.close()


async def test_an_unknown_source_is_404(system: System) -> None:
    response = await system.client.post("/v1/communities/c1/inbound/nope", json={})
    assert response.status_code == 404


async def test_secrets_are_never_shown(system: System) -> None:
    listed = await system.client.get("/v1/communities/c1/inbound-sources", headers=ADMIN)
    assert listed.status_code == 200
    assert SECRET not in listed.text and TG_TOKEN not in listed.text
    assert {s["name"]: s["secrets"] for s in listed.json()["items"]}["crm"] == 2
