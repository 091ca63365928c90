"""An erased member counts for no role (issue #6, found by QA): the members service lists them
as neither active nor left, so `GET /members?role=mentor&status=active` no longer has them, while
the KPI counted their roles for ever. In any arrival order and after a rebuild."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from alembic.config import Config

from gatherly.envelope import Envelope
from gatherly.replay import replay
from gatherly.settings import Settings
from services.kpi import migrations
from services.kpi.projections import KpiProjection
from tests.integration.test_kpi_support import History, kpi_client, project, publish

T0 = datetime.fromisoformat("2026-03-02T10:00:00+00:00")


def mentors(community: str) -> History:
    """A and B join as mentors; A is erased while active, then C becomes one and leaves."""
    h = History(community)
    for i, m in enumerate(("a", "b", "c")):
        h.add("member.joined", m, T0 + timedelta(hours=i), channel="vk",
              joined_at=T0 + timedelta(hours=i))
        h.add("member.role_assigned", m, T0 + timedelta(hours=i), role="mentor")
    h.add("member.role_assigned", "a", T0, role="hero")
    h.add("member.erased", "a", T0 + timedelta(days=1), erased_at=T0 + timedelta(days=1))
    h.add("member.left", "c", T0 + timedelta(days=2), left_at=T0 + timedelta(days=2))
    return h


def latest_aggregate_first(facts: list[Envelope]) -> list[Envelope]:
    order = {f.subject: i for i, f in enumerate(facts)}
    return sorted(facts, key=lambda f: (-order[f.subject], f.sequence))


async def roles_and_total(client: httpx.AsyncClient, community: str) -> tuple[Any, ...]:
    headers = {"X-Gatherly-Community": community}
    roles = (await client.get(f"/v1/communities/{community}/kpis/roles", headers=headers)).json()
    members = (await client.get(f"/v1/communities/{community}/kpis/members", headers=headers,
                                params={"from": "2026-03-01", "to": "2026-03-31"})).json()
    return {r: n for r, n in roles["roles"].items() if n}, members["total"]


async def test_an_erased_member_counts_for_no_role_in_any_order_and_after_a_rebuild(
    settings: Settings,
) -> None:
    together = mentors("together").facts  # one batch: the erasure with the join it erases
    apart = mentors("apart").facts  # one fact a batch, each aggregate's facts in order
    reversed_ = latest_aggregate_first(mentors("reversed").facts)
    await publish(settings, together)
    await project(settings, len(together))
    await publish(settings, apart + reversed_)
    await project(settings.model_copy(update={"projection_batch_size": 1}),
                  len(apart) + len(reversed_))
    # The members service: A is neither active nor left, no leave recorded; B is the one
    # active mentor. A's join still counts in the member total (no leave, as there).
    expected = ({"mentor": 1}, 2)
    async for client in kpi_client(settings):
        live = [await roles_and_total(client, c) for c in ("together", "apart", "reversed")]
        assert live == [expected] * 3
        await replay(settings, KpiProjection(), show=False)
        assert [await roles_and_total(client, c)
                for c in ("together", "apart", "reversed")] == live


def _kpi_schema_at(settings: Settings, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes.update(url=settings.database, schema="kpi",
                             version_table="alembic_version")
    if revision == "head":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def test_members_erased_before_the_upgrade_stop_counting_for_their_roles(
    settings: Settings,
) -> None:
    facts = mentors("old").facts
    await publish(settings, facts)
    await project(settings, len(facts))
    async for client in kpi_client(settings):
        await asyncio.to_thread(_kpi_schema_at, settings, "kpi0019")  # as kept before kpi0020
        assert await roles_and_total(client, "old") == ({"mentor": 2, "hero": 1}, 2)
        await asyncio.to_thread(_kpi_schema_at, settings, "head")
        assert await roles_and_total(client, "old") == ({"mentor": 1}, 2)
