"""kpi0021 drops `first_attendance_days`, which nothing reads since the events KPI counts a
period's new participants per event; its downgrade brings the days back, counted again."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from gatherly.db import create_engine
from gatherly.settings import Settings
from tests.integration.test_kpi_api import RANGE, scenario
from tests.integration.test_kpi_erased_roles import _kpi_schema_at
from tests.integration.test_kpi_support import kpi_client, project, publish

FIRSTS_PER_DAY = (
    "SELECT f.community_id, z.tz, CAST(f.checked_in_at AT TIME ZONE z.tz AS date), count(*)"
    " FROM first_attendances f JOIN kpi_zones z USING (community_id) GROUP BY 1, 2, 3"
)


async def test_the_days_go_and_come_back_counted_on_a_downgrade(settings: Settings) -> None:
    facts = scenario("c21").facts
    await publish(settings, facts)
    await project(settings, len(facts))
    async for client in kpi_client(settings):  # registers the zone the days would be kept in
        asked = await client.get("/v1/communities/c21/kpis/members",
                                 params={**RANGE, "tz": "Asia/Tokyo"},
                                 headers={"X-Gatherly-Community": "c21"})
        assert asked.status_code == 200, asked.text
    engine = create_engine(settings.database, "kpi")
    try:
        async with engine.connect() as conn:
            exists = text("SELECT to_regclass('first_attendance_days') IS NOT NULL")
            assert not (await conn.execute(exists)).scalar_one()
        await asyncio.to_thread(_kpi_schema_at, settings, "kpi0020")
        async with engine.connect() as conn:
            days = sorted((await conn.execute(text(
                "SELECT community_id, tz, day, n FROM first_attendance_days"))).all())
            expected = sorted((await conn.execute(text(FIRSTS_PER_DAY))).all())
        assert days == expected and any(tz == "Asia/Tokyo" for _, tz, _, _ in days)
        await asyncio.to_thread(_kpi_schema_at, settings, "head")
        async with engine.connect() as conn:
            assert not (await conn.execute(exists)).scalar_one()
    finally:
        await engine.dispose()
