"""Alembic, run programmatically: the kernel's tables first, then the service's own, per schema."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gatherly.db import SCHEMA_NAME

KERNEL_MIGRATIONS = "gatherly.migrations"
KERNEL_VERSION_TABLE = "gatherly_kernel_version"


def migrate(url: str, schema: str, service_migrations: str | None) -> None:
    """Bring `schema` to head: kernel tables (events, checkpoints), then the service's tables."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    _upgrade(url, schema, KERNEL_MIGRATIONS, KERNEL_VERSION_TABLE)
    if service_migrations:
        _upgrade(url, schema, service_migrations, "alembic_version")


def _upgrade(url: str, schema: str, package: str, version_table: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    config = Config()
    config.set_main_option("script_location", str(Path(module.__file__).parent))
    config.attributes.update(url=url, schema=schema, version_table=version_table)
    command.upgrade(config, "head")


def run_env(context: Any) -> None:
    """Body of every `env.py`: connect, fence the schema, run the revisions."""
    attributes = context.config.attributes
    asyncio.run(_run_online(context, attributes))


async def _run_online(context: Any, attributes: dict[str, Any]) -> None:
    schema = attributes["schema"]
    engine = create_async_engine(attributes["url"], poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
            await connection.execute(text(f"SET search_path TO {schema}, public"))
            await connection.commit()

            def run(sync_connection: Connection) -> None:
                context.configure(
                    connection=sync_connection,
                    version_table=attributes["version_table"],
                    version_table_schema=schema,
                    transaction_per_migration=True,
                )
                with context.begin_transaction():
                    context.run_migrations()

            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()
