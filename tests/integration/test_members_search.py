"""Name and e-mail prefix search in any script (issue #5): the keys are folded in Python
(`personal.search_key`), written with the profile, backfilled by m0005, and erased with it."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.settings import Settings
from tests.integration.test_members_api import BASE, client, settings
from tests.integration.test_members_erasure import _members_schema_at

__all__ = ["client", "settings"]


async def found(client: httpx.AsyncClient, prefix: str) -> list[str]:
    response = await client.get(BASE, params={"q": prefix})
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["items"]]


async def test_names_and_e_mails_are_found_by_a_prefix_in_any_case_and_script(
    client: httpx.AsyncClient,
) -> None:
    people = {}
    for name, email in (("Ёлка Смирнова", "ЁЛКА@пример.рф"), ("Ünïcødé Straße", None),
                        ("Ann Lee", "ann@example.org")):
        joined = await client.post(BASE, json={"channel": "vk", "display_name": name,
                                               "email": email})
        assert joined.status_code == 201, joined.text
        people[name] = joined.json()["id"]
    elka, unicode, ann = people.values()
    for prefix, expected in (("ёлка", [elka]), ("ЁЛ", [elka]), ("ёлка@", [elka]),
                             ("üNÏ", [unicode]), ("ÜNÏCØDÉ STRASSE", [unicode]),
                             ("AN", [ann]), ("ann@EX", [ann]), ("%", []), ("_", [])):
        assert await found(client, prefix) == expected, prefix
    patched = await client.patch(f"{BASE}/{ann}", json={"display_name": "Мария"},
                                 headers={"If-Match": '"1"'})
    assert patched.status_code == 200, patched.text
    assert await found(client, "мар") == [ann]
    assert await found(client, "ann l") == []
    assert (await client.post(f"{BASE}/{elka}/erase")).status_code == 200
    assert await found(client, "ёлка") == []


async def test_the_upgrade_gives_profiles_written_before_it_their_keys(
    settings: Settings,
) -> None:
    await asyncio.to_thread(_members_schema_at, settings, "m0004")
    engine = create_engine(settings.database, "members")
    members = [str(uuid.uuid4()) for _ in range(3)]
    async with engine.begin() as conn:
        for member_id, name, email in zip(members, ("Мария", None, "Ann"),
                                          (None, "ЁЛКА@пример.рф", "ann@example.org"),
                                          strict=True):
            await conn.execute(text(
                "INSERT INTO member_list (id, community_id, channel, status, joined_at, version)"
                " VALUES (:id, 'c1', 'vk', 'active', now(), 1)"), {"id": member_id})
            await conn.execute(text(
                "INSERT INTO member_profile (member_id, community_id, display_name, email)"
                " VALUES (:id, 'c1', :name, :email)"), {"id": member_id, "name": name,
                                                         "email": email})
    await asyncio.to_thread(_members_schema_at, settings, "head")
    async with engine.connect() as conn:
        keys = {str(r.member_id): (r.name_key, r.email_key) for r in await conn.execute(text(
            "SELECT member_id, name_key, email_key FROM member_profile"))}
    await engine.dispose()
    assert [keys[m] for m in members] == [
        ("мария", None), (None, "ёлка@пример.рф"), ("ann", "ann@example.org")]
