"""The events API in-process against real Postgres and NATS: the whole cycle, and refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.outbox import Relay
from gatherly.settings import Settings
from services.events.app import create_app
from tests.helpers import eventually, running, stream_envelopes

OPERATOR = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write"}
BASE = "/v1/communities/c1/events"
START = datetime(2030, 5, 14, 19, 0, tzinfo=UTC)


def meetup(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Founders' breakfast", "format": "offline", "place": "Café Lumen",
        "starts_at": "2030-05-14T21:00:00+02:00", "ends_at": "2030-05-14T23:00:00+02:00",
        "time_zone": "Europe/Berlin", "channel": "telegram",
    }
    return {**body, **changes}


def member() -> str:
    return str(uuid.uuid4())


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://events") as client:
        client.headers.update(OPERATOR)
        yield client
    await app.state.engine.dispose()


async def event_count(client: httpx.AsyncClient) -> int:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events")))


async def open_event(client: httpx.AsyncClient, **changes: Any) -> str:
    created = await client.post(BASE, json=meetup(**changes))
    assert created.status_code == 201, created.text
    event_id = str(created.json()["id"])
    opened = await client.post(f"{BASE}/{event_id}/open-registration")
    assert opened.status_code == 200, opened.text
    return event_id


async def test_a_scheduled_event_is_stored_in_utc_and_shown_with_its_time_zone(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(BASE, json=meetup(capacity=30))
    assert response.status_code == 201, response.text
    event = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"{BASE}/{event['id']}"
    assert datetime.fromisoformat(event["starts_at"]) == START
    assert event["starts_at"].endswith(("+00:00", "Z"))
    assert (event["status"], event["time_zone"], event["capacity"]) == (
        "scheduled", "Europe/Berlin", 30)
    assert (await client.get(f"{BASE}/{event['id']}")).json() == event


async def test_a_full_event_waitlists_and_promotes_in_order_when_a_place_frees(
    client: httpx.AsyncClient,
) -> None:
    event_id = await open_event(client, capacity=2)
    people = [member() for _ in range(4)]
    answers = [
        await client.post(f"{BASE}/{event_id}/registrations",
                          json={"member_id": m, "channel": "website"}) for m in people
    ]
    assert [a.status_code for a in answers] == [201] * 4
    assert [a.json()["registration"] for a in answers] == [
        "registered", "registered", "waitlisted", "waitlisted"]
    cancelled = await client.post(f"{BASE}/{event_id}/registrations/{people[0]}/cancel")
    assert cancelled.json()["registration"] == "cancelled"
    registered = (await client.get(f"{BASE}/{event_id}/registrations")).json()["items"]
    waitlist = (await client.get(f"{BASE}/{event_id}/waitlist")).json()["items"]
    assert [s["member_id"] for s in registered] == [people[1], people[2]]
    assert [s["member_id"] for s in waitlist] == [people[3]]
    shown = (await client.get(f"{BASE}/{event_id}")).json()
    assert (shown["registered"], shown["waitlisted"]) == (2, 1)


async def test_check_in_by_member_by_code_and_as_walk_in_and_twice_counts_once(
    client: httpx.AsyncClient,
) -> None:
    event_id = await open_event(client)
    alice, bob, carol = member(), member(), member()
    for who in (alice, bob):
        await client.post(f"{BASE}/{event_id}/registrations",
                          json={"member_id": who, "channel": "vk"})
    code = (await client.get(f"{BASE}/{event_id}/registrations/{bob}")).json()["code"]
    by_id = await client.post(f"{BASE}/{event_id}/check-ins", json={"member_id": alice})
    by_code = await client.post(f"{BASE}/{event_id}/check-ins", json={"code": code.lower()})
    walk_in = await client.post(f"{BASE}/{event_id}/check-ins",
                                json={"member_id": carol, "walk_in": True})
    assert [r.status_code for r in (by_id, by_code, walk_in)] == [201, 201, 201]
    assert by_code.json()["member_id"] == bob
    assert (walk_in.json()["walk_in"], walk_in.json()["channel"]) == (True, "offline")
    written = await event_count(client)
    again = await client.post(f"{BASE}/{event_id}/check-ins", json={"member_id": alice})
    assert again.status_code == 200
    assert again.json()["checked_in_at"] == by_id.json()["checked_in_at"]
    assert await event_count(client) == written
    shown = (await client.get(f"{BASE}/{event_id}")).json()
    assert (shown["status"], shown["attended"]) == ("live", 3)
    attendees = (await client.get(f"{BASE}/{event_id}/attendees")).json()["items"]
    assert [a["member_id"] for a in attendees] == [alice, bob, carol]


async def test_the_whole_cycle_reaches_the_stream_in_order(settings: Settings,
                                                           client: httpx.AsyncClient) -> None:
    event_id = await open_event(client, capacity=1)
    first, second = member(), member()
    for who in (first, second):
        await client.post(f"{BASE}/{event_id}/registrations",
                          json={"member_id": who, "channel": "email"})
    await client.post(f"{BASE}/{event_id}/registrations/{first}/cancel")
    await client.post(f"{BASE}/{event_id}/check-ins", json={"member_id": second})
    finished = await client.post(f"{BASE}/{event_id}/finish",
                                 json={"finished_at": "2030-05-14T23:05:00+02:00"})
    assert finished.status_code == 200, finished.text
    duties = finished.json()["followups"]
    assert len(duties) == 7
    assert {datetime.fromisoformat(d["due_at"]) for d in duties} == {
        datetime.fromisoformat(meetup()["ends_at"]) + timedelta(days=7)}
    for duty in duties:
        done = await client.post(f"{BASE}/{event_id}/followups/{duty['task']}/done",
                                 json={"by_member": second})
        assert done.status_code == 200, done.text
    assert (await client.get(f"{BASE}/{event_id}")).json()["status"] == "followed_up"

    engine = create_engine(settings.database, "events")
    try:
        async with running(Relay(settings, "events", engine)):
            async def all_published() -> bool:
                return len(await stream_envelopes(settings)) == 22
            await eventually(all_published)
    finally:
        await engine.dispose()
    envelopes = await stream_envelopes(settings)
    assert {e.subject for e in envelopes} == {event_id}
    assert [e.sequence for e in envelopes] == list(range(1, 23))
    assert [e.past_tense for e in envelopes[:8]] == [
        "scheduled", "registration_opened", "registered", "waitlisted",
        "registration_cancelled", "registered", "attended", "finished"]
    promoted = envelopes[5]
    assert promoted.data["member_id"] == second and promoted.data["channel"] == "email"
    assert {e.past_tense for e in envelopes[8:]} == {"followup_assigned", "followup_done"}
    assert all(e.nats_subject.startswith("gatherly.c1.event.") for e in envelopes)


async def test_overdue_duties_are_listed_across_events(client: httpx.AsyncClient) -> None:
    past = {"starts_at": "2024-01-10T18:00:00+00:00", "ends_at": "2024-01-10T20:00:00+00:00"}
    events = []
    for _ in range(2):
        event_id = await open_event(client, **past)
        await client.post(f"{BASE}/{event_id}/check-ins",
                          json={"member_id": member(), "walk_in": True})
        await client.post(f"{BASE}/{event_id}/finish")
        events.append(event_id)
    await client.post(f"{BASE}/{events[0]}/followups/thanks_sent/done")
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    historian = member()
    assigned = await client.post(f"{BASE}/{events[1]}/followups/history_written/assign",
                                 json={"assignee": historian, "due_at": later})
    assert assigned.json()["assignee"] == historian and not assigned.json()["overdue"]
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"overdue": "true", "limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/communities/c1/followups", params=params)).json()
        seen += [(d["event_id"], d["task"]) for d in page["items"]]
        assert all(d["overdue"] for d in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 12
    assert (events[0], "thanks_sent") not in seen and (events[1], "history_written") not in seen


async def test_events_list_by_when_format_and_channel_through_a_cursor(
    client: httpx.AsyncClient,
) -> None:
    ids = []
    for day in range(5):
        starts = START + timedelta(days=day)
        body = meetup(starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=2))
                      .isoformat(), channel="vk" if day % 2 else "telegram")
        ids.append((await client.post(BASE, json=body)).json()["id"])
    await client.post(f"{BASE}/{ids[4]}/cancel", json={"reason": "venue closed"})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"when": "upcoming", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(BASE, params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[:4]
    by_channel = (await client.get(BASE, params={"channel": "vk"})).json()["items"]
    assert [e["id"] for e in by_channel] == [ids[1], ids[3]]
    assert (await client.get(BASE, params={"format": "online"})).json()["items"] == []
    other = {"X-Gatherly-Community": "c2", "X-Gatherly-Scopes": "read"}
    assert (await client.get(f"{BASE}/{ids[0]}", headers=other)).status_code == 404
