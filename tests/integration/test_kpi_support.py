"""What the KPI tests share: facts built as the producers would publish them, put on the stream
with the kernel's Bus, and projected by the real ProjectionRunner."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.bus import Bus, OutgoingMessage
from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.projection import ProjectionRunner
from gatherly.settings import Settings
from services.kpi.app import create_app
from services.kpi.projections import KpiProjection
from services.kpi.queries.zones import ensure_zone
from tests.helpers import eventually, running

COMMUNITY = "c1"
OPERATOR = {"X-Gatherly-Community": COMMUNITY, "X-Gatherly-Scopes": "read"}


class History:
    """A community's facts, each aggregate's numbered in order, as the event stores would."""

    def __init__(self, community: str = COMMUNITY) -> None:
        self.community = community
        self.versions: dict[str, int] = defaultdict(int)
        self.facts: list[Envelope] = []

    def id(self, name: str) -> str:
        """A stable UUID for a short name, distinct per community (as real ids are)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.community}/{name}"))

    def add(self, type_: str, name: str, when: datetime, **data: Any) -> Envelope:
        """A fact about the aggregate `name`; data values that are names (`@m1`) become ids."""
        subject = self.id(name)
        self.versions[subject] += 1
        data = {k: self.id(v[1:]) if isinstance(v, str) and v.startswith("@") else v
                for k, v in data.items()}
        fact = Envelope(
            id=str(uuid.uuid4()), source="/gatherly/test", type=f"gatherly.{type_}",
            subject=subject, community_id=self.community, sequence=self.versions[subject],
            time=when, data={k: v.isoformat() if isinstance(v, datetime) else v
                           for k, v in data.items() if v is not None},
        )
        self.facts.append(fact)
        return fact


async def publish(settings: Settings, facts: list[Envelope]) -> None:
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="kpi-test")
    try:
        for start in range(0, len(facts), 2000):
            chunk = facts[start:start + 2000]
            messages = [OutgoingMessage(subject=f.nats_subject, payload=f.to_json(),
                                        message_id=f.id) for f in chunk]
            assert await bus.publish_pipelined(messages, ack_timeout=30) == len(chunk)
    finally:
        await bus.close()


async def project(settings: Settings, count: int, within: float = 60) -> None:
    """Run the KPI projection until it has applied `count` facts in total (this run) and settled
    every message on the stream. A count alone is not enough: a redelivered view is applied
    again (idempotently) and counted again, so the count can be reached while a fact deferred
    for redelivery still waits."""
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="test-last")
    last = await bus.last_sequence()
    await bus.close()
    engine = create_engine(settings.database, "kpi", pool_size=2)
    runner = ProjectionRunner(settings, KpiProjection(), engine)

    async def caught_up() -> bool:
        return runner.applied >= count and runner.watermark.value >= last

    try:
        async with running(runner):
            await eventually(caught_up, within=within)
    finally:
        await engine.dispose()


async def project_while_zones_register(
    settings: Settings, engine: AsyncEngine, facts: list[Envelope], zones: tuple[str, ...],
    community: str = "oracle",
) -> None:
    """Project `facts` in batches of 50 with the community's first zone registered before any
    fact, the middle ones while batches are written and the last after every fact: a rollup
    must be exact whichever way its zone's backfill met the projection."""
    await ensure_zone(engine, community, zones[0])
    await publish(settings, facts)
    small_batches = settings.model_copy(update={"projection_batch_size": 50})
    projecting = asyncio.create_task(project(small_batches, len(facts)))
    for tz in zones[1:-1]:
        await asyncio.sleep(0.3)
        await ensure_zone(engine, community, tz)
    await projecting
    await ensure_zone(engine, community, zones[-1])


def with_late_attendances(history: list[Envelope], first: int = 6000) -> list[Envelope]:
    """The first facts of `history`, and every fact of its first 20 attended events (their
    attendances come late)."""
    events = sorted({f.subject for f in history if f.type == "gatherly.event.attended"})[:20]
    return [f for i, f in enumerate(history) if i < first or f.subject in set(events)]


async def kpi_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kpi",
                                 headers=OPERATOR) as client:
        yield client
    await app.state.engine.dispose()


def test_each_aggregate_is_numbered_in_order() -> None:
    history = History()
    first = history.add("member.joined", "m1", datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
                        channel="vk", invited_by="@m0")
    second = history.add("member.left", "m1", first.time)
    other = history.add("member.joined", "m2", first.time, channel="vk")
    assert (first.sequence, second.sequence, other.sequence) == (1, 2, 1)
    assert first.data == {"channel": "vk", "invited_by": history.id("m0")}
    assert first.subject == history.id("m1") != History("c2").id("m1")
