"""Custom channels (issue #3): with the gateway's `X-Gatherly-Community-Channels` header, a join,
a rejoin, an import row or a profile's handles may name a built-in channel or one the community
added, nothing else. Without the header (a direct call that bypassed the gateway) any custom slug
is taken. The CLI import, which runs without the gateway, is told them by `--channels`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gatherly.cli import main as gatherly
from gatherly.settings import Settings
from tests.integration.test_members_api import BASE, client, event_count, settings
from tests.integration.test_members_import import CSV, upload

__all__ = ["client", "settings"]

CHANNELS = {"X-Gatherly-Community-Channels": "alumni-chat, founders"}


async def test_a_join_through_a_channel_the_community_added_is_recorded(
    client: httpx.AsyncClient,
) -> None:
    for channel in ("alumni-chat", "founders", "telegram"):
        response = await client.post(BASE, json={"channel": channel}, headers=CHANNELS)
        assert response.status_code == 201, response.text
        assert response.json()["channel"] == channel


async def test_a_join_through_a_channel_the_community_lacks_is_a_problem_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    known = await client.post(BASE, json={"channel": "other-club", "external_ref": "x1"})
    assert known.status_code == 201  # no header: today's behaviour, any custom slug
    before = await event_count(client)
    for body in ({"channel": "other-club"}, {"channel": "other-club", "external_ref": "x1"}):
        response = await client.post(BASE, json=body, headers=CHANNELS)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["field"] == "channel" and "other-club" in problem["detail"]
    empty = await client.post(BASE, json={"channel": "founders"},
                              headers={"X-Gatherly-Community-Channels": ""})
    assert empty.status_code == 422  # the community added no channel at all
    assert await event_count(client) == before


async def test_a_rejoin_through_a_channel_the_community_lacks_is_refused(
    client: httpx.AsyncClient,
) -> None:
    member = (await client.post(BASE, json={"channel": "vk"})).json()["id"]
    assert (await client.post(f"{BASE}/{member}/leave")).status_code == 200
    refused = await client.post(f"{BASE}/{member}/rejoin", json={"channel": "nowhere"},
                                headers=CHANNELS)
    assert refused.status_code == 422 and refused.json()["field"] == "channel"
    back = await client.post(f"{BASE}/{member}/rejoin", json={"channel": "founders"},
                             headers=CHANNELS)
    assert back.status_code == 200, back.text


async def test_an_import_row_naming_a_channel_the_community_lacks_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    data = b"channel,external_ref\nfounders,f1\nother-club,o1\ntelegram,t1\n"
    client.headers.update(CHANNELS)
    report = (await upload(client, data, CSV)).json()
    assert (report["created"], report["rejected"]) == (2, 1)
    assert [(r["row"], r["field"]) for r in report["rejections"]] == [(3, "channel")]


async def test_a_profile_handle_for_a_channel_the_community_lacks_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """A profile names handles per channel: a PATCH is held to the community's channels too."""
    joined = await client.post(BASE, json={"channel": "telegram"}, headers=CHANNELS)
    url, etag = f"{BASE}/{joined.json()['id']}", joined.headers["ETag"]
    before = await event_count(client)
    refused = await client.patch(url, json={"handles": {"other-club": "@ann"}},
                                 headers={**CHANNELS, "If-Match": etag})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "other-club" in refused.json()["detail"]
    assert await event_count(client) == before
    kept = await client.patch(url, json={"handles": {"founders": "@ann", "vk": "ann"}},
                              headers={**CHANNELS, "If-Match": etag})
    assert kept.status_code == 200, kept.text
    assert kept.json()["handles"] == {"founders": "@ann", "vk": "ann"}


async def test_the_cli_import_holds_rows_to_the_channels_it_is_given(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATHERLY_DATABASE_URL", settings.database)
    file = tmp_path / "members.csv"
    file.write_text("channel,external_ref\nfounders,f1\nother-club,o1\ntelegram,t1\n")
    command = ["import-members", "c1", str(file), "--channels", "alumni-chat,founders"]
    assert await asyncio.to_thread(gatherly, command) == 1
    shown = capfd.readouterr()
    assert "rows 3: created 2, already present 0, rejected 1" in shown.out, shown.out
    assert "row 3: channel: unknown channel 'other-club'" in shown.out, shown.out
    assert "--channels not given" not in shown.err
    unchecked = await asyncio.to_thread(gatherly, ["import-members", "c1", str(file)])
    assert unchecked == 0  # without --channels any custom slug is taken, and the CLI says so
    assert "--channels not given" in capfd.readouterr().err
