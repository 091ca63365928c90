"""Erasure (GDPR): afterwards no members endpoint and no table in the service's schema holds
anything personal about the member; the log keeps ids and non-personal facts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.envelope import DomainEvent
from gatherly.eventstore import EventStore
from gatherly.settings import Settings
from services.members import migrations
from tests.integration.test_members_api import BASE, client, settings

__all__ = ["client", "settings"]

PERSONAL = {
    "display_name": "Zinaida Quill", "email": "zina.quill@example.org", "city": "Tartu",
    "handles": {"telegram": "@zquill", "vk": "zquill_vk"}, "interests": ["beekeeping"],
}
EXTERNAL_REF = "tg-777123"
ERASED_VALUES = ["Zinaida", "Quill", "zina.quill", "Tartu", "zquill", "beekeeping", EXTERNAL_REF]


def assert_nothing_personal(where: str, body: str) -> None:
    for value in ERASED_VALUES:
        assert value.lower() not in body.lower(), f"{value!r} still readable in {where}"


async def test_after_erasure_no_endpoint_returns_anything_personal(
    client: httpx.AsyncClient,
) -> None:
    joined = await client.post(BASE, json={"channel": "telegram", "external_ref": EXTERNAL_REF,
                                           **PERSONAL})
    member_id = joined.json()["id"]
    url = f"{BASE}/{member_id}"
    await client.put(f"{url}/roles/storyteller")
    await client.patch(url, json={"city": "Tartu", "display_name": "Zinaida Quill"},
                       headers={"If-Match": '"2"'})
    before = (await client.get(BASE, params={"q": "zina"})).json()
    assert [m["id"] for m in before["items"]] == [member_id]

    erased = await client.post(f"{url}/erase")
    assert erased.status_code == 200 and erased.json()["status"] == "erased"

    reads = {
        "member": await client.get(url),
        "history": await client.get(f"{url}/history"),
        "list": await client.get(BASE),
        "list erased": await client.get(BASE, params={"status": "erased"}),
        "search name": await client.get(BASE, params={"q": "zin"}),
        "search e-mail": await client.get(BASE, params={"q": "zina.quill"}),
        "search tag": await client.get(BASE, params={"tag": "beekeeping"}),
        "search role": await client.get(BASE, params={"role": "storyteller"}),
        "leave": await client.post(f"{url}/leave"),
        "rejoin": await client.post(f"{url}/rejoin", json={"channel": "vk"}),
        "patch": await client.patch(url, json={"city": "X"}, headers={"If-Match": '"4"'}),
        "role": await client.put(f"{url}/roles/hero"),
        "erase again": await client.post(f"{url}/erase"),
        "openapi": await client.get("/openapi.json"),
    }
    for where, response in reads.items():
        assert response.status_code < 500, (where, response.text)
        assert_nothing_personal(where, response.text)
    assert reads["member"].json()["status"] == "erased"
    assert reads["member"].json()["roles"] == ["storyteller"]  # a non-personal fact stays
    assert [m["id"] for m in reads["list erased"].json()["items"]] == [member_id]
    assert reads["search name"].json()["items"] == []
    assert reads["search tag"].json()["items"] == []
    assert reads["leave"].status_code == 422 and reads["leave"].json()["rule"] == "erased"
    assert reads["history"].json()["items"][0]["summary"] == "Personal data erased on request"


async def test_after_erasure_no_table_of_the_service_holds_the_values(
    client: httpx.AsyncClient,
) -> None:
    joined = await client.post(BASE, json={"channel": "telegram", "external_ref": EXTERNAL_REF,
                                           **PERSONAL})
    url = f"{BASE}/{joined.json()['id']}"
    # Free text the log itself held: a leave's reason is in the event's data.
    await client.post(f"{url}/leave", json={"reason": "moving to Tartu with Zinaida"})
    await client.post(f"{url}/erase")
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        tables = (await conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'members'"
        ))).scalars().all()
        assert {"events", "member_list", "member_profile"} <= set(tables)
        for table in tables:
            rows = (await conn.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))
                    ).scalars().all()
            assert_nothing_personal(f"table {table}", "\n".join(rows))


async def test_an_erased_person_who_joins_again_is_a_new_member(
    client: httpx.AsyncClient,
) -> None:
    body = {"channel": "telegram", "external_ref": EXTERNAL_REF}
    first = (await client.post(BASE, json=body)).json()
    await client.post(f"{BASE}/{first['id']}/erase")
    again = await client.post(BASE, json=body)
    assert again.status_code == 201 and again.json()["id"] != first["id"]


async def test_after_erasure_the_history_data_holds_no_free_text_or_reference(
    client: httpx.AsyncClient,
) -> None:
    """The summary already hid a leave reason; each event's `data` showed it verbatim."""
    joined = await client.post(BASE, json={"channel": "telegram", "external_ref": EXTERNAL_REF})
    url = f"{BASE}/{joined.json()['id']}"
    left = await client.post(f"{url}/leave", json={"reason": "moving to Tartu with Zinaida"})
    assert left.status_code == 200, left.text
    shown = (await client.get(f"{url}/history")).json()["items"]
    assert shown[0]["data"]["reason"] == "moving to Tartu with Zinaida"  # the member's own, yet

    await client.post(f"{url}/erase")

    history = await client.get(f"{url}/history")
    assert_nothing_personal("history", history.text)
    by_type = {item["type"]: item["data"] for item in history.json()["items"]}
    assert set(by_type["gatherly.member.left"]) == {"left_at"}
    assert "external_ref" not in by_type["gatherly.member.joined"]
    assert by_type["gatherly.member.joined"]["channel"] == "telegram"  # non-personal stays


def _members_schema_at(settings: Settings, revision: str) -> None:
    """The members schema moved to `revision`, as `gatherly.migrate` moves it to head."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes.update(url=settings.database, schema="members",
                             version_table="alembic_version")
    if revision == "head":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def test_a_member_erased_before_the_log_was_redacted_is_redacted_by_the_upgrade(
    settings: Settings,
) -> None:
    await asyncio.to_thread(_members_schema_at, settings, "m0003")
    store, at = EventStore("/gatherly/members"), datetime.now(UTC)
    erased, other = str(uuid.uuid4()), str(uuid.uuid4())
    engine = create_engine(settings.database, "members")
    async with engine.begin() as conn:
        for member in (erased, other):
            await store.append(conn, stream_id=member, community_id="c1", expected_version=0,
                               events=[DomainEvent("gatherly.member.joined", {
                                   "channel": "vk", "joined_at": at.isoformat(),
                                   "external_ref": EXTERNAL_REF}, at),
                                   DomainEvent("gatherly.member.left", {
                                       "left_at": at.isoformat(), "reason": "moving to Tartu"},
                                       at)])
        await store.append(conn, stream_id=erased, community_id="c1", expected_version=2,
                           events=[DomainEvent("gatherly.member.erased",
                                               {"erased_at": at.isoformat()}, at)])
    await asyncio.to_thread(_members_schema_at, settings, "head")
    async with engine.connect() as conn:
        redacted = [e.data for e in await store.read_stream(conn, erased)]
        kept = [e.data for e in await store.read_stream(conn, other)]
    await engine.dispose()
    assert redacted == [{"channel": "vk", "joined_at": at.isoformat()},
                        {"left_at": at.isoformat()}, {"erased_at": at.isoformat()}]
    assert kept[0]["external_ref"] == EXTERNAL_REF and kept[1]["reason"] == "moving to Tartu"
