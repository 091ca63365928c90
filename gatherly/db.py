"""Database engines: one Postgres schema per service, through SQLAlchemy's asyncpg driver."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
