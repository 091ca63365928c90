"""Facts from the stream reach a real receiver on loopback, signed, retried, replayable.

Everything real: members' event store and relay, NATS, the webhooks fan-out projection, the
delivery worker, and an aiohttp receiver that verifies each request with `standardwebhooks`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sqlalchemy import text
from standardwebhooks import Webhook

from gatherly.bus import Bus
from gatherly.db import create_engine
from gatherly.envelope import DomainEvent, Envelope
from gatherly.eventstore import EventStore
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.outbox import Relay
from gatherly.projection import ProjectionRunner
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings
from gatherly.settlement import Received
from services.webhooks.app import create_app
from services.webhooks.delivery import DeliveryWorker
from services.webhooks.projection import WebhooksProjection
from tests.conftest import free_port, fresh_database
from tests.helpers import (
    eventually,
    joined,
    left,
    running,
    stream_deliveries,
    stream_envelopes,
)
from tests.integration.test_kpi_support import publish

ADMIN = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
BASE = "/v1/communities/c1/webhooks"


@dataclass
class Receiver:
    """Answers with the next scripted status (then 200), and keeps what it was sent."""

    port: int
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[tuple[dict[str, str], str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.text(), time.monotonic()))
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.Response(status=status, headers=headers, text="<b>answer</b>" * 100)

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _, _ in self.received]


@pytest.fixture
async def settings(
    postgres_server: EmbeddedPostgres, nats_server: EmbeddedNats, tmp_path: Path
) -> AsyncIterator[Settings]:
    settings = Settings(
        data_dir=tmp_path, database_url=await fresh_database(postgres_server),
        nats_url=nats_server.url, stream_name=f"T{uuid.uuid4().hex[:12].upper()}",
        relay_poll_seconds=0.05, projection_ack_wait_seconds=2.0,
        allow_http_webhooks=True, allow_loopback_webhooks=True, webhook_retry_scale=0.001,
        webhook_poll_seconds=0.05, webhook_timeout_seconds=2.0,
    )
    for schema in ("members", "webhooks"):
        await asyncio.to_thread(migrate, settings.database, schema, SCHEMAS[schema])
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="test")
    await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
    try:
        yield settings
    finally:
        await bus.delete_stream()
        await bus.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/hooks", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


@dataclass
class Pipeline:
    settings: Settings
    api: httpx.AsyncClient
    members: EventStore
    members_engine: object
    webhooks_engine: object

    async def subscribe(self, url: str, types: list[str]) -> dict[str, str]:
        response = await self.api.post(BASE, json={"url": url, "event_types": types})
        assert response.status_code == 201, response.text
        created: dict[str, str] = response.json()
        return created

    async def append(self, member_id: str, *events: DomainEvent) -> list[str]:
        async with self.members_engine.begin() as conn:  # type: ignore[attr-defined]
            version = await self.members.stream_version(conn, member_id)
            envelopes = await self.members.append(
                conn, stream_id=member_id, community_id="c1", expected_version=version,
                events=list(events))
        return [e.id for e in envelopes]

    async def scalar(self, sql: str, **params: object) -> object:
        async with self.webhooks_engine.connect() as conn:  # type: ignore[attr-defined]
            return await conn.scalar(text(sql), params)


@contextlib.asynccontextmanager
async def pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    """The relay, the fan-out and the worker running; the API in-process."""
    members_engine = create_engine(settings.database, "members", pool_size=2)
    webhooks_engine = create_engine(settings.database, "webhooks", pool_size=4)
    app = create_app(settings)
    relay = Relay(settings, "members", members_engine)
    fan_out = ProjectionRunner(settings, WebhooksProjection(), webhooks_engine)
    worker = DeliveryWorker(settings, webhooks_engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (httpx.AsyncClient(transport=transport, base_url="http://webhooks",
                                      headers=ADMIN) as api,
                    running(relay), running(fan_out), running(worker)):
            yield Pipeline(settings, api, EventStore("/gatherly/members"), members_engine,
                           webhooks_engine)
    finally:
        await app.state.engine.dispose()
        await members_engine.dispose()
        await webhooks_engine.dispose()


async def test_facts_arrive_signed_in_order_and_verify_with_standard_webhooks(
    settings: Settings, receiver: Receiver,
) -> None:
    async with pipeline(settings) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.*"])
        await p.subscribe(receiver.url.replace("/hooks", "/events"), ["gatherly.event.*"])
        member = str(uuid.uuid4())
        ids = await p.append(member, joined(), left())
        ids += await p.append(member, DomainEvent("gatherly.member.rejoined", {
            "channel": "vk", "rejoined_at": "2026-05-01T12:00:00+00:00"}, joined().time))
        await eventually(lambda: _at_least(receiver, 3))
    assert receiver.ids() == [f"msg_{i}" for i in ids]  # this member's facts, in order
    webhook = Webhook(subscription["secret"])
    for headers, body, _ in receiver.received:
        event = webhook.verify(body, headers)
        assert event["specversion"] == "1.0" and event["subject"] == member
        assert headers["webhook-id"] == f"msg_{event['id']}"
    assert [json.loads(body)["type"] for _, body, _ in receiver.received] == [
        "gatherly.member.joined", "gatherly.member.left", "gatherly.member.rejoined"]


async def _at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


async def test_a_failing_endpoint_gets_the_same_message_again_and_the_log_shows_each_try(
    settings: Settings, receiver: Receiver,
) -> None:
    receiver.script = [(500, {}), (503, {}), (200, {})]
    async with pipeline(settings) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.joined"])
        [event_id] = await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: _at_least(receiver, 3))
        log = (await p.api.get(f"{BASE}/{subscription['id']}/deliveries")).json()["items"]
        await eventually(lambda: _status(p, subscription["id"], "delivered"))
        [delivery] = (await p.api.get(f"{BASE}/{subscription['id']}/deliveries")).json()["items"]
        detail = (await p.api.get(
            f"{BASE}/{subscription['id']}/deliveries/{delivery['id']}")).json()
    assert len(log) == 1 and set(receiver.ids()) == {f"msg_{event_id}"}
    assert delivery["webhook_id"] == f"msg_{event_id}" and delivery["attempts"] == 3
    attempts = detail["attempt_log"]
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert [a["verdict"] for a in attempts] == ["retry", "retry", "delivered"]
    assert all(len(a["response_excerpt"]) <= 512 for a in attempts)


async def _status(p: Pipeline, subscription_id: str, status: str) -> bool:
    found = await p.scalar("SELECT count(*) FROM deliveries WHERE subscription_id = :s"
                           " AND status = :status", s=subscription_id, status=status)
    return bool(found)


async def test_retry_after_holds_the_next_attempt_back(
    settings: Settings, receiver: Receiver,
) -> None:
    receiver.script = [(429, {"Retry-After": "1"})]
    async with pipeline(settings) as p:
        await p.subscribe(receiver.url, ["*"])
        await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: _at_least(receiver, 2))
    first, second = receiver.received[0][2], receiver.received[1][2]
    assert second - first >= 0.95


async def test_410_disables_the_endpoint_and_a_fact_records_it(
    settings: Settings, receiver: Receiver,
) -> None:
    receiver.script = [(410, {})]
    async with pipeline(settings) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.*"])
        await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: _disabled(p, subscription["id"]))
        await p.append(str(uuid.uuid4()), joined())
        shown = (await p.api.get(f"{BASE}/{subscription['id']}")).json()
        webhooks_relay = Relay(settings, "webhooks", p.webhooks_engine)  # type: ignore[arg-type]
        async with running(webhooks_relay):
            await eventually(lambda: _on_stream(settings, "gatherly.webhook.disabled"))
        await asyncio.sleep(0.3)
    assert shown["enabled"] is False and shown["disabled_reason"] == "gone"
    assert len(receiver.received) == 1  # nothing more went to an endpoint that said 410
    disabled = [e for e in await stream_envelopes(settings)
                if e.type == "gatherly.webhook.disabled"]
    assert [(e.subject, e.data["reason"], e.data["last_status"]) for e in disabled] == [
        (subscription["id"], "gone", 410)]


async def _disabled(p: Pipeline, subscription_id: str) -> bool:
    return not await p.scalar("SELECT enabled FROM subscriptions WHERE id = :s",
                              s=subscription_id)


async def _on_stream(settings: Settings, event_type: str) -> bool:
    return any(e.type == event_type for e in await stream_envelopes(settings))


async def test_an_endpoint_failing_for_the_whole_period_is_disabled(
    settings: Settings, receiver: Receiver,
) -> None:
    receiver.script = [(500, {})] * 100
    fast = settings.model_copy(update={"webhook_retry_scale": 0.0002,
                                       "webhook_disable_after_failing_hours": 0.4 / 3600})
    async with pipeline(fast) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.*"])
        await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: _disabled(p, subscription["id"]))
        reason = await p.scalar("SELECT disabled_reason FROM subscriptions WHERE id = :s",
                                s=subscription["id"])
        facts = await p.scalar("SELECT count(*) FROM events WHERE type = :t",
                               t="gatherly.webhook.disabled")
    assert reason == "failing" and facts == 1


async def test_resend_and_recover_send_the_same_message_again(
    settings: Settings, receiver: Receiver,
) -> None:
    receiver.script = [(400, {}), (400, {})]
    async with pipeline(settings) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.*"])
        hook = f"{BASE}/{subscription['id']}"
        since = (await p.api.get(hook)).json()["created_at"]
        ids = await p.append(str(uuid.uuid4()), joined(), left())
        await eventually(lambda: _count(p, "failed", 2))
        recovered = await p.api.post(f"{hook}/recover", json={"since": since})
        assert recovered.json() == {"recovered": 2}
        await eventually(lambda: _count(p, "delivered", 2))
        [newest, _] = (await p.api.get(f"{hook}/deliveries")).json()["items"]
        assert (await p.api.post(f"{hook}/deliveries/{newest['id']}/resend")).status_code == 202
        await eventually(lambda: _at_least(receiver, 5))
        missing = await p.api.post(f"{hook}/deliveries/999999/resend")
    expected = [f"msg_{i}" for i in ids]
    assert receiver.ids() == [*expected, *expected, expected[1]]
    assert missing.status_code == 404


async def _count(p: Pipeline, status: str, count: int) -> bool:
    found = await p.scalar("SELECT count(*) FROM deliveries WHERE status = :s", s=status)
    return found == count


async def test_a_rotated_secret_signs_beside_the_new_one(
    settings: Settings, receiver: Receiver,
) -> None:
    async with pipeline(settings) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.*"])
        rotated = (await p.api.post(f"{BASE}/{subscription['id']}/rotate-secret")).json()
        await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: _at_least(receiver, 1))
    headers, body, _ = receiver.received[0]
    for secret in (subscription["secret"], rotated["secret"]):
        Webhook(secret).verify(body, headers)


async def test_an_address_refused_at_send_time_is_never_contacted(
    settings: Settings, receiver: Receiver,
) -> None:
    """Created while loopback was allowed, sent after it no longer is: the check at send time
    (on the address the connection would use) refuses it."""
    strict = settings.model_copy(update={"allow_loopback_webhooks": False})
    async with pipeline(settings) as p:
        subscription = await p.subscribe(receiver.url, ["gatherly.member.*"])
    async with pipeline(strict) as p:
        await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: _attempted(p))
        [delivery] = (await p.api.get(f"{BASE}/{subscription['id']}/deliveries")).json()["items"]
        detail = (await p.api.get(f"{BASE}/{subscription['id']}/deliveries/{delivery['id']}"))
    assert receiver.received == []
    assert detail.json()["attempt_log"][0]["error_class"] == "forbidden_address"


async def _attempted(p: Pipeline) -> bool:
    return bool(await p.scalar("SELECT count(*) FROM delivery_attempts"))


async def test_an_erasure_takes_the_members_words_out_of_the_delivery_log(
    settings: Settings, receiver: Receiver,
) -> None:
    """Deliveries keep what partners were sent; after an erasure, without the member's words."""
    async with pipeline(settings) as p:
        await p.subscribe(receiver.url, ["gatherly.member.*"])
        member, other = str(uuid.uuid4()), str(uuid.uuid4())
        leaving = DomainEvent("gatherly.member.left", {
            "left_at": "2026-05-01T12:00:00+00:00", "reason": "moving to Tartu"}, joined().time)
        await p.append(member, joined(), leaving)
        await p.append(other, joined(), leaving)
        await eventually(lambda: _at_least(receiver, 4))
        await p.append(member, DomainEvent("gatherly.member.erased", {
            "erased_at": "2026-05-02T12:00:00+00:00"}, joined().time))
        await eventually(lambda: _at_least(receiver, 5))

        async def redacted() -> bool:
            return await p.scalar("SELECT count(*) FROM deliveries WHERE body LIKE '%Tartu%'") == 1

        await eventually(redacted)
        kept = await p.scalar("SELECT body FROM deliveries WHERE body LIKE '%Tartu%'")
    assert json.loads(str(kept))["subject"] == other  # another member's words stay


async def test_a_redelivered_view_is_delivered_once_and_keeps_no_version(
    settings: Settings, receiver: Receiver,
) -> None:
    now = datetime.now(UTC)
    await publish(settings, [
        Envelope(id=str(uuid.uuid4()), source="/test", type="gatherly.content.viewed",
                 subject=f"view{i}", community_id="c1", sequence=1, time=now,
                 data={"content_id": "p1", "channel": "telegram", "count": 1,
                       "viewed_at": now.isoformat()})
        for i in range(3)
    ])
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://webhooks", headers=ADMIN) as api:
        created = await api.post(BASE, json={"url": receiver.url,
                                             "event_types": ["gatherly.content.*"]})
        assert created.status_code == 201, created.text
    await app.state.engine.dispose()
    engine = create_engine(settings.database, "webhooks", pool_size=2)
    runner = ProjectionRunner(settings, WebhooksProjection(), engine)
    _, runner.generation = await runner.checkpoint()
    deliveries = await stream_deliveries(settings)
    await runner.apply_batch(Received.of(deliveries))
    again = await runner.apply_batch(Received.of(deliveries))
    async with engine.connect() as conn:
        made = await conn.scalar(text("SELECT count(*) FROM deliveries"))
        kept = await conn.scalar(text("SELECT count(*) FROM projection_applied"))
    await engine.dispose()
    assert len(again.applied) == 3, "a view is applied as it comes, a redelivery too"
    assert (made, kept) == (3, 0)
