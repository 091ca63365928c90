"""Erasure reaches the engagement service: after `gatherly.member.erased` no engagement endpoint
and no engagement table holds the member's words (feedback text, answers, thanks reasons); the
items, their statuses and moments stay. Real Postgres and NATS: the members API erases, its
relay publishes, the engagement-erasure projection forgets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.db import create_engine
from gatherly.outbox import Relay
from gatherly.projection import ProjectionRunner
from gatherly.replay import replay
from gatherly.settings import Settings
from services.engagement import erasure_store
from services.engagement.app import create_app as engagement_app
from services.engagement.erasure import Erasure
from services.engagement.erasure_projection import ErasureProjection
from services.members.app import create_app as members_app
from tests.helpers import eventually, running

OPERATOR = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
BASE = "/v1/communities/c1"
# The erased member's words, and words written to them, each findable by a distinct marker.
WORDS = {
    "feedback": "Zinaida says the Tartu meetup was too loud",
    "answer to them": "Sorry Zinaida, next time quieter",
    "their answer": "Zinaida answers: the slides are online",
    "thanks to them": "Zinaida hosted beautifully",
    "thanks by them": "from Zinaida for the warm welcome",
}
MARKER = "zinaida"


@pytest.fixture
async def apps(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    members, engagement = members_app(settings), engagement_app(settings)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=members), base_url="http://m",
                          headers=OPERATOR) as m,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=engagement), base_url="http://e",
                          headers=OPERATOR) as e,
    ):
        yield m, e
    await members.state.engine.dispose()
    await engagement.state.engine.dispose()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database, "engagement", pool_size=4)
    yield engine
    await engine.dispose()


async def join(members: httpx.AsyncClient, name: str) -> str:
    joined = await members.post(f"{BASE}/members", json={"channel": "telegram",
                                                         "display_name": name})
    assert joined.status_code == 201, joined.text
    return str(joined.json()["id"])


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{BASE}{path}", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def engagement_rows(engine: AsyncEngine, *, log: bool = False) -> dict[str, str]:
    """Every table of the schema as text; the log (`events`) only when asked."""
    async with engine.connect() as conn:
        tables = (await conn.execute(text(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'engagement' AND table_type = 'BASE TABLE'"))).scalars().all()
        return {t: "\n".join((await conn.execute(text(
            f"SELECT row_to_json(t)::text FROM {t} t"))).scalars().all())
            for t in tables if log or t != "events"}


async def reads(engagement: httpx.AsyncClient, member: str) -> dict[str, httpx.Response]:
    return {
        "feedback": await engagement.get(f"{BASE}/feedback"),
        "thanks": await engagement.get(f"{BASE}/thanks"),
        "thanks of member": await engagement.get(f"{BASE}/thanks", params={"member_id": member}),
    }


async def test_an_erased_members_words_leave_every_engagement_endpoint_and_table(
    settings: Settings, apps: tuple[httpx.AsyncClient, httpx.AsyncClient], engine: AsyncEngine,
) -> None:
    members, engagement = apps
    zina, other = await join(members, "Zinaida Quill"), await join(members, "Olaf Berg")
    theirs = await post(engagement, "/feedback", {
        "member_id": zina, "about_kind": "community", "channel": "telegram", "rating": 2,
        "text": WORDS["feedback"]})
    answered = await post(engagement, f"/feedback/{theirs['id']}/answer",
                          {"by_member": other, "answer": WORDS["answer to them"]})
    others = await post(engagement, "/feedback", {
        "member_id": other, "about_kind": "community", "channel": "email",
        "text": "the coffee was great"})
    await post(engagement, f"/feedback/{others['id']}/answer",
               {"by_member": zina, "answer": WORDS["their answer"]})
    await post(engagement, "/thanks", {"to_member": zina, "by_member": other,
                                       "reason": WORDS["thanks to them"]})
    await post(engagement, "/thanks", {"to_member": other, "by_member": zina,
                                       "reason": WORDS["thanks by them"]})
    assert all(MARKER in r.text.lower() for r in (await reads(engagement, zina)).values())

    erased = await members.post(f"{BASE}/members/{zina}/erase")
    assert erased.status_code == 200, erased.text

    relay = Relay(settings, "members", members._transport.app.state.engine)  # type: ignore[attr-defined]
    runner = ProjectionRunner(settings, ErasureProjection(), engine)

    async def forgotten() -> bool:
        shown = await reads(engagement, zina)
        return not any(MARKER in r.text.lower() for r in shown.values())

    async with running(relay), running(runner):
        await eventually(forgotten, within=20)
    # The log too: a feedback's text never entered it, and the thanks' reasons are redacted.
    for table, rows in (await engagement_rows(engine, log=True)).items():
        assert MARKER not in rows.lower(), f"{table} still holds the member's words"
    after = (await engagement.get(f"{BASE}/feedback/{theirs['id']}")).json()
    assert after["text"] == "" and after["answer"] is None
    assert {k: after[k] for k in ("status", "submitted_at", "answered_at", "answered_by",
                                  "rating", "member_id")} == {
        k: answered[k] for k in ("status", "submitted_at", "answered_at", "answered_by",
                                 "rating", "member_id")}
    untouched = (await engagement.get(f"{BASE}/feedback/{others['id']}")).json()
    assert untouched["text"] == "the coffee was great" and untouched["answer"] is None
    listed = (await engagement.get(f"{BASE}/feedback")).json()["items"]
    assert len(listed) == 2
    thanks = (await engagement.get(f"{BASE}/thanks")).json()["items"]
    assert len(thanks) == 2 and all(t["reason"] is None for t in thanks)


async def test_words_arriving_after_the_erasure_are_not_kept(
    settings: Settings, apps: tuple[httpx.AsyncClient, httpx.AsyncClient], engine: AsyncEngine,
) -> None:
    """A platform's backlog may bring a member's feedback after they were erased."""
    members, engagement = apps
    zina, other = await join(members, "Zinaida Quill"), await join(members, "Olaf Berg")
    await members.post(f"{BASE}/members/{zina}/erase")
    relay = Relay(settings, "members", members._transport.app.state.engine)  # type: ignore[attr-defined]
    runner = ProjectionRunner(settings, ErasureProjection(), engine)

    async def recorded() -> bool:
        async with engine.connect() as conn:
            return bool(await conn.scalar(text("SELECT count(*) FROM erased_members")))

    async with running(relay), running(runner):
        await eventually(recorded, within=20)
    late = await post(engagement, "/feedback", {
        "member_id": zina, "about_kind": "community", "channel": "telegram",
        "text": WORDS["feedback"], "submitted_at": "2026-01-05T10:00:00+00:00"})
    assert late["text"] == "" and late["status"] == "submitted"
    answer = await post(engagement, f"/feedback/{late['id']}/answer",
                        {"by_member": other, "answer": WORDS["answer to them"]})
    assert answer["answer"] is None and answer["status"] == "answered"
    await post(engagement, "/thanks", {"to_member": zina, "reason": WORDS["thanks to them"]})
    for table, rows in (await engagement_rows(engine, log=True)).items():
        assert MARKER not in rows.lower(), f"{table} holds words that came after the erasure"
    assert len((await engagement.get(f"{BASE}/feedback")).json()["items"]) == 1


async def test_forgetting_again_changes_nothing_and_a_rebuild_keeps_the_erasures(
    settings: Settings, apps: tuple[httpx.AsyncClient, httpx.AsyncClient], engine: AsyncEngine,
) -> None:
    members, engagement = apps
    zina = await join(members, "Zinaida Quill")
    await post(engagement, "/feedback", {"member_id": zina, "about_kind": "community",
                                         "channel": "telegram", "text": WORDS["feedback"]})
    await members.post(f"{BASE}/members/{zina}/erase")
    relay = Relay(settings, "members", members._transport.app.state.engine)  # type: ignore[attr-defined]
    runner = ProjectionRunner(settings, ErasureProjection(), engine)

    async def settled() -> bool:
        return runner.applied >= 1

    async with running(relay), running(runner):
        await eventually(settled, within=20)
    assert runner.applied == 1  # the erasure alone: NATS never sent the join before it
    once = await engagement_rows(engine)
    async with engine.begin() as conn:
        await erasure_store.forget(conn, [Erasure("c1", zina, datetime.now(UTC))])
    assert await engagement_rows(engine) == once
    await replay(settings, ErasureProjection(), show=False)
    again = await engagement_rows(engine)
    assert {t: again[t] for t in ("feedback", "thanks", "erased_members")} == {
        t: once[t] for t in ("feedback", "thanks", "erased_members")}
    assert MARKER not in again["feedback"].lower()


@pytest.mark.parametrize("erasure_first", [True, False])
async def test_a_write_and_an_erasure_at_once_never_keep_the_words(
    engine: AsyncEngine, erasure_first: bool,
) -> None:
    """Whichever transaction takes the community's erasure lock second sees what the first
    committed."""
    member, feedback_id = str(uuid.uuid4()), str(uuid.uuid4())
    erasure = Erasure("c1", member, datetime.now(UTC))
    insert = text(
        "INSERT INTO feedback (id, community_id, member_id, about_kind, channel, body, status,"
        " submitted_at, version) VALUES (:id, 'c1', :m, 'community', 'email', :body,"
        " 'submitted', now(), 1)")

    async def write(started: asyncio.Event, go: asyncio.Event) -> None:
        async with engine.begin() as conn:
            erased = await erasure_store.erased_among(conn, "c1", [member])
            started.set()
            await go.wait()
            body = "" if member in erased else WORDS["feedback"]
            await conn.execute(insert, {"id": feedback_id, "m": member, "body": body})

    async def erase(started: asyncio.Event, go: asyncio.Event) -> None:
        async with engine.begin() as conn:
            await erasure_store.forget(conn, [erasure])
            started.set()
            await go.wait()

    first, second = (erase, write) if erasure_first else (write, erase)
    started, go, unused = asyncio.Event(), asyncio.Event(), asyncio.Event()
    held = asyncio.create_task(first(started, go))
    await started.wait()  # the first holds its lock, uncommitted
    waiting = asyncio.create_task(second(asyncio.Event(), unused))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the second waits for the first's lock
    go.set()
    unused.set()
    await asyncio.gather(held, waiting)
    async with engine.connect() as conn:
        body = await conn.scalar(text("SELECT body FROM feedback WHERE id = :id"),
                                 {"id": feedback_id})
    assert body == ""
