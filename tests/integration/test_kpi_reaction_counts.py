"""Platforms' anonymous reaction counts in the KPIs: each (content, counter, kind)'s latest
snapshot adds to the reactions, per view and per channel, and to no speed quantile; it may
arrive before its content's publication, and an older snapshot arriving later changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from gatherly.settings import Settings
from tests.integration.test_kpi_support import History, kpi_client, project, publish

T0 = datetime.fromisoformat("2025-03-03T10:00:00+00:00")
RANGE = {"from": "2025-03-01", "to": "2025-03-31", "granularity": "week"}


def counted(h: History, kind: str, total: int, as_of: datetime, post: str = "p1") -> None:
    h.add("content.reactions_counted", f"{post}/telegram/{kind}", as_of, content_id=f"@{post}",
          channel="telegram", counter="telegram", kind=kind, total=total, as_of=as_of)


def history() -> History:
    h = History("c1")
    # Out of order: the platform's count arrives before the content's publication.
    counted(h, "like", 7, T0 + timedelta(days=1))
    counted(h, "like", 2, T0 + timedelta(hours=1))  # older, imported later: replaced
    counted(h, "love", 3, T0 + timedelta(days=8))
    counted(h, "like", 100, T0 - timedelta(days=40))  # another post, outside the window
    h.add("content.published", "p1", T0, channel="telegram", kind="post", published_at=T0)
    h.add("content.viewed", "v1", T0, content_id="@p1", channel="telegram", count=20,
          viewed_at=T0)
    for i, minutes in enumerate((10, 30)):
        at = T0 + timedelta(minutes=minutes)
        h.add("reaction.added", f"r{i}", at, content_id="@p1", member_id=f"@m{i}", kind="like",
              channel="vk", at=at)
    h.add("reaction.removed", "r1", T0 + timedelta(hours=2), content_id="@p1", member_id="@m1",
          kind="like", channel="vk", at=T0 + timedelta(hours=2))
    return h


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in kpi_client(settings):
        yield client


async def kpis(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.get(f"/v1/communities/c1/kpis/{name}", params=RANGE)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_platforms_latest_reaction_counts_add_to_the_reactions(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    facts = history().facts
    facts = [facts[-1], *facts[:-1]]  # a reaction's removal arrives first, too
    await publish(settings, facts)
    await project(settings, len(facts))
    reactions = await kpis(client, "reactions")
    # 2 added - 1 removed by members, + the latest like count (7) + the love count (3).
    assert (reactions["added"], reactions["removed"], reactions["net"]) == (2, 1, 1)
    assert (reactions["counted"], reactions["total"]) == (10, 11)
    assert reactions["per_view"] == pytest.approx(12 / 20)
    assert reactions["kinds"]["like"] == {"added": 2, "removed": 1, "counted": 7}
    assert reactions["kinds"]["love"] == {"added": 0, "removed": 0, "counted": 3}
    assert reactions["channels"]["telegram"]["counted"] == 10
    weeks = {p["start"]: p["counted"] for p in reactions["periods"] if p["counted"]}
    assert weeks == {"2025-03-03": 7, "2025-03-10": 3}
    # A count has no moment of reacting: the speed is the members' reactions' alone.
    speed = reactions["speed"]
    assert speed["first_reaction_seconds"]["median"] == 600
    # Within 2 % by design: the median over every reaction is read from 1 % delay bins.
    assert speed["all_reactions_seconds"]["median"] == pytest.approx(1200, rel=0.02)
    channels = {c["channel"]: c for c in (await kpis(client, "channels"))["channels"]}
    assert (channels["telegram"]["reactions"], channels["vk"]["reactions"]) == (10, 2)
    summary = await kpis(client, "summary")
    assert summary["reactions"]["per_view"] == pytest.approx(12 / 20)


async def test_a_later_snapshot_replaces_the_count_and_an_older_one_changes_nothing(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    h = history()
    await publish(settings, h.facts)
    await project(settings, len(h.facts))
    late = History("c1")
    late.versions.update(h.versions)
    counted(late, "like", 0, T0 + timedelta(days=2))  # every like withdrawn
    counted(late, "love", 1, T0 + timedelta(days=2))  # older than the love count of day 8
    await publish(settings, late.facts)
    await project(settings, len(late.facts))
    reactions = await kpis(client, "reactions")
    assert reactions["counted"] == 3 and reactions["kinds"]["like"]["counted"] == 0
