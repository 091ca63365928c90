"""Refused commands on the events API: a 4xx problem+json naming the rule, and nothing written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gatherly.settings import Settings
from services.events.app import create_app
from tests.integration.test_events_api import BASE, OPERATOR, meetup


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://events") as client:
        client.headers.update(OPERATOR)
        yield client
    await app.state.engine.dispose()


async def written(client: httpx.AsyncClient) -> tuple[int, int, int]:
    """Events on the log, seats and follow-ups in the read model: what a refusal must not touch."""
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        counts = await conn.execute(text(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_seat),"
            " (SELECT count(*) FROM event_followup)"))
        row = counts.one()
    return int(row[0]), int(row[1]), int(row[2])


def refused(response: httpx.Response, status: int, rule: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["rule"] == rule


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"ends_at": "2030-05-14T20:00:00+02:00"}, "end_after_start"),
        ({"capacity": -3}, "capacity"),
        ({"capacity": 0}, "capacity"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"place": None}, "place"),
        ({"format": "hybrid"}, "link"),
        ({"channel": "Not A Channel"}, "channel"),
    ],
)
async def test_a_bad_schedule_names_its_rule_and_writes_nothing(
    client: httpx.AsyncClient, changes: dict[str, Any], rule: str
) -> None:
    refused(await client.post(BASE, json=meetup(**changes)), 422, rule)
    assert await written(client) == (0, 0, 0)
    assert (await client.get(BASE)).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (meetup(starts_at="2030-05-14T21:00:00"), "timezone"),
        (meetup(format="carrier-pigeon"), "enum"),
        ({**meetup(), "surprise": 1}, "extra_forbidden"),
    ],
)
async def test_a_malformed_schedule_is_a_422_problem(
    client: httpx.AsyncClient, body: dict[str, Any], says: str
) -> None:
    response = await client.post(BASE, json=body)
    assert response.status_code == 422 and says in response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await written(client) == (0, 0, 0)


async def test_commands_the_state_machine_or_the_rules_forbid_write_nothing(
    client: httpx.AsyncClient,
) -> None:
    event_id = (await client.post(BASE, json=meetup())).json()["id"]
    member = str(uuid.uuid4())
    url = f"{BASE}/{event_id}"
    refused(await client.post(f"{url}/registrations", json={"member_id": member,
                                                            "channel": "vk"}),
            409, "registration_not_open")
    refused(await client.post(f"{url}/finish"), 409, "transition")
    refused(await client.post(f"{url}/close-registration"), 409, "transition")
    await client.post(f"{url}/open-registration")
    await client.post(f"{url}/registrations", json={"member_id": member, "channel": "vk"})
    before = await written(client)
    refused(await client.post(f"{url}/registrations", json={"member_id": member,
                                                            "channel": "email"}),
            409, "already_registered")
    refused(await client.post(f"{url}/check-ins", json={"member_id": str(uuid.uuid4())}),
            422, "not_registered")
    refused(await client.post(f"{url}/check-ins", json={"code": "ZZZZZZZZZZ"}),
            422, "unknown_code")
    refused(await client.post(f"{url}/followups/thanks_sent/done"), 409, "transition")
    refused(await client.post(f"{url}/followups/sang_a_song/done"), 422, "unknown_followup")
    stale = await client.post(f"{url}/cancel", headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.headers["ETag"] == '"3"'
    assert await written(client) == before

    assert (await client.post(f"{url}/cancel", json={"reason": "speaker ill"})).status_code == 200
    after_cancel = await written(client)
    refused(await client.post(f"{url}/check-ins", json={"member_id": member}),
            409, "event_cancelled")
    refused(await client.post(f"{url}/open-registration"), 409, "transition")
    refused(await client.post(f"{url}/cancel"), 409, "transition")
    refused(await client.post(f"{url}/reschedule", json={
        "starts_at": "2030-06-01T10:00:00+00:00", "ends_at": "2030-06-01T12:00:00+00:00"}),
        409, "transition")
    assert await written(client) == after_cancel


async def test_a_done_duty_cannot_be_done_twice(client: httpx.AsyncClient) -> None:
    event_id = (await client.post(BASE, json=meetup(
        starts_at="2024-02-01T10:00:00+00:00", ends_at="2024-02-01T12:00:00+00:00"))).json()["id"]
    url = f"{BASE}/{event_id}"
    await client.post(f"{url}/open-registration")
    await client.post(f"{url}/check-ins", json={"member_id": str(uuid.uuid4()), "walk_in": True})
    assert (await client.post(f"{url}/finish")).status_code == 200
    assert (await client.post(f"{url}/followups/promoted/done")).status_code == 200
    before = await written(client)
    refused(await client.post(f"{url}/followups/promoted/done"), 409, "followup_done")
    refused(await client.post(f"{url}/followups/promoted/assign"), 409, "followup_done")
    assert await written(client) == before


async def test_unknown_events_and_bad_cursors_are_4xx_problems(client: httpx.AsyncClient) -> None:
    missing = f"{BASE}/{uuid.uuid4()}"
    assert (await client.get(missing)).status_code == 404
    assert (await client.post(f"{missing}/finish")).status_code == 404
    assert (await client.post(f"{missing}/check-ins", json={"code": "ABCDEFGH"})).status_code == 404
    assert (await client.get(f"{missing}/attendees")).status_code == 404
    for url in (BASE, "/v1/communities/c1/followups"):
        bad = await client.get(url, params={"cursor": "%%%"})
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
    both = await client.post(f"{missing}/check-ins", json={"code": "ABCDEFGH",
                                                           "member_id": str(uuid.uuid4())})
    assert both.status_code == 422 and "exactly one" in both.text
