"""The zones a community's rollups exist for: the first question in a zone not yet registered
registers it and backfills its rollups (facts/rollups.py), in a transaction of its own."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.kpi.facts.rollups import backfill
from services.kpi.projections import SCHEMA

# A question that checks its zone in its own statement selects this (as `zoned`, and raises
# NewZone when it is false): no round trip and pooled connection of its own, as `ensure_zone`
# before the question took (0.3-0.7 ms of a question at 1M members, docs/benchmarks.md).
ZONED = "EXISTS (SELECT FROM kpi_zones WHERE community_id = :c AND tz = :tz)"


class NewZone(Exception):
    """A question found its zone not registered yet: its rollups are not filled (ensure_zone
    registers and fills them; then the question is asked again)."""


# Reads the rollups by local day: `day` is a date, truncated as a timestamp without zone.
DAY_BUCKET = "CAST(date_trunc(:g, CAST(day AS timestamp)) AS date)"
IN_WINDOW = "community_id = :c AND tz = :tz AND day >= :first AND day <= :last"


def day_bucket(granularity: str) -> str:
    """DAY_BUCKET, or the day itself at day granularity (no date_trunc per row)."""
    return "day" if granularity == "day" else DAY_BUCKET


def months_and_days(select: str, where: str) -> str:
    """Rows of a table kept per month and per day (`period`, `start`) that cover :first..:last
    once: the whole months [:m1, :m2) (window.whole_months) and the days before and after them.
    Three range scans of the (…, period, start) key, not one scan filtered row by row."""
    ranges = ("period = 'month' AND start >= :m1 AND start < :m2",
              "period = 'day' AND start >= :first AND start < :m1",
              "period = 'day' AND start >= :m2 AND start <= :last")
    return " UNION ALL ".join(f"SELECT {select} WHERE {where} AND {r}" for r in ranges)


def whole_months_and_days(select: str, rollup: str, where: str = "TRUE") -> str:
    """Rows of `<rollup>_months` and `<rollup>_days` (same keys, `n`) that cover :first..:last
    once: whole months [:m1, :m2) from the monthly rollup, the days before and after them from
    the daily one. A year is 12 rows per key instead of 365."""
    where = f"community_id = :c AND tz = :tz AND {where}"
    return (f"SELECT {select} FROM {rollup}_months WHERE {where} AND month >= :m1 AND month < :m2"
            f" UNION ALL SELECT {select} FROM {rollup}_days WHERE {where}"
            " AND day >= :first AND day < :m1"
            f" UNION ALL SELECT {select} FROM {rollup}_days WHERE {where}"
            " AND day >= :m2 AND day <= :last")


def before_window(select: str, rollup: str) -> str:
    """Rows of `<rollup>_months` and `<rollup>_days` that cover every day before :first once:
    the months before :m0 (the month :first falls in) and the days of :m0 before :first."""
    where = "community_id = :c AND tz = :tz"
    return (f"SELECT {select} FROM {rollup}_months WHERE {where} AND month < :m0"
            f" UNION ALL SELECT {select} FROM {rollup}_days WHERE {where}"
            " AND day >= :m0 AND day < :first")


async def ensure_zone(engine: AsyncEngine, community: str, tz: str) -> None:
    """Checked on every question (one index lookup, no cache): a rebuild or a restore can never
    leave a stale "registered" behind."""
    async with engine.connect() as conn:
        # One round trip: no BEGIN and ROLLBACK around a single read.
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        known = await conn.scalar(
            text("SELECT 1 FROM kpi_zones WHERE community_id = :c AND tz = :tz"),
            {"c": community, "tz": tz},
        )
    if not known:
        # Shielded: an asker who hangs up does not cancel (and so waste) a backfill under way.
        await asyncio.shield(asyncio.ensure_future(_backfill(engine, community, tz)))


async def _backfill(engine: AsyncEngine, community: str, tz: str) -> None:
    """A big community's backfill takes minutes, past the pool's command timeout: it runs on a
    connection of its own without one, so it finishes even if the asker gave up waiting."""
    unbounded = create_async_engine(
        engine.url, poolclass=NullPool,
        connect_args={"server_settings": {"search_path": f"{SCHEMA},public"},
                      "command_timeout": None},
    )
    try:
        async with unbounded.begin() as conn:
            await backfill(conn, community, tz)
    finally:
        await unbounded.dispose()
