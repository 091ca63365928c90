"""A statement sent to the driver under a SQLAlchemy connection belongs to its transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gatherly.db import create_engine, driver_in_transaction
from gatherly.settings import Settings


async def test_the_driver_is_handed_out_only_inside_a_begun_transaction(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database, "public", pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS driver_probe (n int)"))
            await conn.commit()
        async with engine.connect() as conn:
            # SQLAlchemy has not begun a transaction yet: a statement now would commit alone.
            with pytest.raises(RuntimeError):
                await driver_in_transaction(conn)
            await conn.execute(text("SELECT 1"))
            await (await driver_in_transaction(conn)).execute("INSERT INTO driver_probe VALUES (1)")
            await conn.rollback()
            assert (await conn.execute(text("SELECT count(*) FROM driver_probe"))).scalar() == 0
    finally:
        await engine.dispose()
