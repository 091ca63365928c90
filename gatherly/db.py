"""Database engines: one Postgres schema per service, through SQLAlchemy's asyncpg driver."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def create_engine(
    url: str, schema: str, *, pool_size: int = 10, postgres_settings: dict[str, str] | None = None
) -> AsyncEngine:
    """An engine whose connections see only `schema` (and `public`) by default; `postgres_settings`:
    more Postgres settings every connection starts with."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: asyncpg's ping is BEGIN, a query and ROLLBACK, three round trips on every
        # checkout (most of a join's database time). A connection a Postgres restart killed
        # fails its request with 503 instead (problems.py), and that failure invalidates the
        # pool, so the next request gets a fresh connection.
        pool_pre_ping=False,
        pool_recycle=600,
        connect_args={
            "server_settings": {"search_path": f"{schema},public", **(postgres_settings or {})},
            "timeout": 5,
            "command_timeout": 30,
        },
    )


async def driver_in_transaction(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, for a statement that must belong to `conn`'s open
    transaction: sent straight to the driver, it skips SQLAlchemy's per-statement CPU. SQLAlchemy
    begins its transaction at its own first statement; one sent before would commit alone."""
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError("a statement sent outside its transaction")
    return driver
