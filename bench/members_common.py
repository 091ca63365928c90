"""What the members benchmarks share: a throwaway embedded Postgres with the members schema."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bench.system import free_ports
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings

HEADERS = {"X-Gatherly-Community": "bench", "X-Gatherly-Scopes": "read,write"}
BASE = "/v1/communities/bench/members"


@contextlib.asynccontextmanager
async def members_database() -> AsyncIterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="gatherly-bench-") as directory:
        root = Path(directory)
        [pg_port] = free_ports(1)
        postgres = EmbeddedPostgres(root / "pg", pg_port, root / "pg.log")
        postgres.start()
        try:
            settings = Settings(data_dir=root, database_url=postgres.url("postgres"),
                                max_body_bytes=1_000_000)
            await asyncio.to_thread(migrate, settings.database, "members", SCHEMAS["members"])
            yield settings
        finally:
            postgres.stop()
