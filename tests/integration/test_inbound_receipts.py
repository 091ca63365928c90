"""Inbound receipts are kept as long as partners may retry a delivery, then purged in passing
(real Postgres, the engagement schema's `inbound_receipts`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.db import create_engine
from gatherly.inbound import InboundReceipts, Receipt
from gatherly.settings import Settings
from tests.integration.test_inbound_api import settings

__all__ = ["settings"]  # the fixture: a database with every service's schema migrated


def delivery(webhook_id: str) -> Receipt:
    return Receipt("c1", "tg", webhook_id, "engagement")


async def received(conn: AsyncConnection, webhook_id: str, hours_ago: float) -> None:
    await conn.execute(
        text("INSERT INTO inbound_receipts (community_id, source, webhook_id, part, answer,"
             " recorded_at) VALUES ('c1', 'tg', :w, 'engagement', '{\"recorded\": 1}',"
             " clock_timestamp() - CAST(:ago AS interval))"),
        {"w": webhook_id, "ago": timedelta(hours=hours_ago)},
    )


async def kept(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(text("SELECT webhook_id FROM inbound_receipts ORDER BY 1"))
    return [row.webhook_id for row in rows]


async def test_receipts_older_than_the_retention_are_purged_in_passing(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database, "engagement", pool_size=1)
    receipts = InboundReceipts(timedelta(hours=72), purge_every_seconds=3600)
    try:
        async with engine.begin() as conn:
            await received(conn, "old", hours_ago=73)
            await received(conn, "recent", hours_ago=71)
        async with engine.begin() as conn:
            assert await receipts.claim(conn, delivery("new")) is None
            await receipts.keep(conn, delivery("new"), {"recorded": 0})
        async with engine.connect() as conn:
            assert await kept(conn) == ["new", "recent"]
        # Within the retention a replay still answers as the first time did.
        async with engine.begin() as conn:
            assert await receipts.claim(conn, delivery("recent")) == {"recorded": 1}
        # Not again until `purge_every_seconds` has passed: claims stay one statement.
        async with engine.begin() as conn:
            await received(conn, "old-again", hours_ago=80)
            assert await receipts.claim(conn, delivery("another")) is None
        async with engine.connect() as conn:
            assert "old-again" in await kept(conn)
            assert await receipts.purge(conn) == 1
            assert "old-again" not in await kept(conn)
    finally:
        await engine.dispose()


def test_the_retention_outlasts_every_partners_retries() -> None:
    assert Settings().inbound_receipt_retention_hours == 72
    assert InboundReceipts().retention == timedelta(hours=72) > timedelta(hours=25)
