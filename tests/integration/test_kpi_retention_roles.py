"""Retention cohorts and role coverage kept as counts (facts/retention.py, facts/roles.py): the
counts equal a recount from the stored facts whenever a zone was registered, late and
out-of-order member facts give the oracle's answers, and the migration's fill equals what the
projection kept."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.settings import Settings
from services.kpi.facts.retention import backfill_sql
from services.kpi.facts.roles import HOLDERS_FROM_FACTS
from tests.integration import test_kpi_oracle_beyond as oracle
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_support import (
    History,
    kpi_client,
    project,
    project_while_zones_register,
    publish,
)

ZONES = ("UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Europe/Berlin")
Counts = dict[tuple[date, date], tuple[int, int]]


def month_of(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date().replace(day=1)


def next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def recount(histories: dict[str, list[tuple[int, str, datetime]]], tz: str) -> Counts:
    """Per (cohort, month): members joined, and the signed changes of "still a member at the
    month's end", straight from each member's changes (written apart from the service)."""
    zone, counts = ZoneInfo(tz), defaultdict(lambda: [0, 0])
    for history in histories.values():
        joins = [at for _, kind, at in history if kind != "left"]
        if not joins:
            continue
        cohort = month_of(min(joins), zone)
        counts[(cohort, cohort)][0] += 1
        month, was = cohort, False
        while month <= max(month_of(at, zone) for _, _, at in history):
            before = [kind for _, kind, at in sorted(history) if month_of(at, zone) <= month]
            now = bool(before) and before[-1] != "left"
            if now != was:
                counts[(cohort, month)][1] += 1 if now else -1
            month, was = next_month(month), now
    return {key: (joined, retained) for key, (joined, retained) in counts.items()
            if (joined, retained) != (0, 0)}


async def stored(engine: AsyncEngine, community: str, tz: str) -> Counts:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT cohort, month, joined, retained FROM retention_months"
                 " WHERE community_id = :c AND tz = :tz AND (joined, retained) <> (0, 0)"),
            {"c": community, "tz": tz})
        return {(r.cohort, r.month): (r.joined, r.retained) for r in rows}


async def histories(engine: AsyncEngine, community: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    async with engine.connect() as conn:
        for r in await conn.execute(
                text("SELECT member_id, seq, kind, at FROM member_changes"
                     " WHERE community_id = :c"), {"c": community}):
            found[r.member_id].append((r.seq, r.kind, r.at))
    return found


async def holders(engine: AsyncEngine, community: str) -> tuple[dict[str, int], dict[str, int]]:
    """Role holders as kept, and as a GROUP BY over the stored roles and statuses."""
    async with engine.connect() as conn:
        kept = await conn.execute(
            text("SELECT role, n FROM role_holders WHERE community_id = :c AND n <> 0"),
            {"c": community})
        counted = await conn.execute(
            text("SELECT r.role, count(*) FROM member_roles r JOIN members m"
                 " USING (community_id, member_id) WHERE r.community_id = :c"
                 " AND m.status = 'member' GROUP BY 1"), {"c": community})
        return dict(tuple(r) for r in kept), dict(tuple(r) for r in counted)


async def test_the_counts_equal_a_recount_whenever_the_zone_was_registered(
    settings: Settings,
) -> None:
    facts = [f for f in generate(seed=3) if f.type.startswith("gatherly.member.")][:8000]
    engine = create_engine(settings.database, "kpi", pool_size=2)
    try:
        await project_while_zones_register(settings, engine, facts, ZONES)
        found = await histories(engine, "oracle")
        assert any(len(h) > 2 for h in found.values()), "rejoins in the history"
        for tz in ZONES:
            expected = recount(found, tz)
            assert await stored(engine, "oracle", tz) == expected and expected, tz
        kept, counted = await holders(engine, "oracle")
        assert kept == counted and counted
        # The migration's fill (zones registered before the upgrade) gives the same counts.
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE retention_months, role_holders"))
            await conn.execute(text(backfill_sql("TRUE")))
            await conn.execute(text(HOLDERS_FROM_FACTS))
        for tz in ZONES:
            assert await stored(engine, "oracle", tz) == recount(found, tz), tz
        assert (await holders(engine, "oracle"))[0] == counted
    finally:
        await engine.dispose()


T0 = datetime.fromisoformat("2025-01-20T12:00:00+00:00")


def rounds() -> list[list[Envelope]]:
    """A member history whose facts arrive over three rounds, each projected before the next:
    a leave stamped before its join, a rejoin stamped before the first join (it moves the
    cohort), a join just before midnight UTC that is the next month in Berlin, roles of
    members who leave, come back and are erased."""
    h, cut = History("late"), [0]
    add = h.add

    def round_done() -> None:
        cut.append(len(h.facts))

    add("member.joined", "a", T0 + timedelta(days=40), channel="vk",
        joined_at=T0 + timedelta(days=40))
    add("member.role_assigned", "a", T0, role="scout")
    add("member.joined", "b", T0 + timedelta(days=110), channel="vk",
        joined_at=T0 + timedelta(days=110))
    add("member.role_assigned", "b", T0, role="mentor")
    add("member.joined", "c", T0 + timedelta(days=12), channel="email",
        joined_at=T0 + timedelta(days=12))
    add("member.role_assigned", "c", T0, role="mentor")
    add("member.role_assigned", "c", T0, role="hero")
    midnight = datetime.fromisoformat("2025-01-31T23:30:00+00:00")
    add("member.joined", "d", midnight, channel="email", joined_at=midnight)
    add("member.joined", "e", T0, channel="email", joined_at=T0)
    add("member.role_assigned", "e", T0, role="greeter")
    round_done()
    add("member.left", "a", T0 + timedelta(days=15), left_at=T0 + timedelta(days=15))
    add("member.rejoined", "b", T0, channel="email", rejoined_at=T0)
    add("member.left", "c", T0 + timedelta(days=70), left_at=T0 + timedelta(days=70))
    add("member.left", "d", midnight + timedelta(minutes=31),
        left_at=midnight + timedelta(minutes=31))
    add("member.erased", "e", T0 + timedelta(days=200), erased_at=T0 + timedelta(days=200))
    round_done()
    add("member.rejoined", "c", T0 + timedelta(days=160), channel="vk",
        rejoined_at=T0 + timedelta(days=160))
    add("member.role_removed", "c", T0, role="hero")
    add("member.rejoined", "d", T0 + timedelta(days=45), channel="vk",
        rejoined_at=T0 + timedelta(days=45))
    add("member.role_assigned", "d", T0, role="hero")
    round_done()
    return [h.facts[a:b] for a, b in pairwise(cut)]


async def answers(client: httpx.AsyncClient, tz: str) -> tuple[Any, Any]:
    url = "/v1/communities/late/kpis"
    window = {"from": "2025-01-01", "to": "2025-12-31", "granularity": "month", "tz": tz}
    retention = await client.get(f"{url}/retention", params=window)
    roles = await client.get(f"{url}/roles")
    assert retention.status_code == roles.status_code == 200, retention.text
    return retention.json()["cohorts"], {k: roles.json()[k] for k in ("roles", "empty")}


async def test_late_and_out_of_order_member_facts_give_the_oracles_answers(
    settings: Settings,
) -> None:
    seen: list[Envelope] = []
    async for client in kpi_client(settings):
        client.headers["X-Gatherly-Community"] = "late"
        for tz in ("UTC", "Europe/Berlin"):  # kept by the projection from the first fact
            await answers(client, tz)
        for batch in rounds():
            await publish(settings, batch)
            await project(settings, len(batch))
            seen += batch
            for tz in ("UTC", "Europe/Berlin"):
                span = oracle.Span(date(2025, 1, 1), date(2025, 12, 1), ZoneInfo(tz))
                assert await answers(client, tz) == (oracle.retention(seen, span),
                                                     oracle.roles(seen)), (len(seen), tz)
        # Backfilled after every fact; the oracle's numbers were worked out by hand too.
        cohorts, roles = await answers(client, "Asia/Kolkata")
        span = oracle.Span(date(2025, 1, 1), date(2025, 12, 1), ZoneInfo("Asia/Kolkata"))
        assert cohorts == oracle.retention(seen, span)
        assert {r: n for r, n in roles["roles"].items() if n} == {
            "mentor": 2, "hero": 1}  # b and c (back); d; e's greeter went with the erasure
        utc, berlin = (await answers(client, "UTC"))[0], (await answers(client, "Europe/Berlin"))[0]
        assert [c["members"] for c in utc[:3]] == [3, 1, 1]  # b, d, e; c; a
        assert [c["members"] for c in berlin[:3]] == [2, 2, 1]  # d joined in February there
