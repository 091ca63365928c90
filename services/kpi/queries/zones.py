"""The zones a community's rollups exist for: the first question in a zone not yet registered
registers it and backfills its rollups (facts/rollups.py), in a transaction of its own."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kpi.facts.rollups import backfill

# Reads the rollups by local day: `day` is a date, truncated as a timestamp without zone.
DAY_BUCKET = "CAST(date_trunc(:g, CAST(day AS timestamp)) AS date)"
IN_WINDOW = "community_id = :c AND tz = :tz AND day >= :first AND day <= :last"


async def ensure_zone(engine: AsyncEngine, community: str, tz: str) -> None:
    """Checked on every question (one index lookup, no cache): a rebuild or a restore can never
    leave a stale "registered" behind."""
    async with engine.connect() as conn:
        known = await conn.scalar(
            text("SELECT 1 FROM kpi_zones WHERE community_id = :c AND tz = :tz"),
            {"c": community, "tz": tz},
        )
    if not known:
        async with engine.begin() as conn:
            await backfill(conn, community, tz)
