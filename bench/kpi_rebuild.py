"""KPI rebuild throughput: facts/s of `gatherly replay kpi` (drop the read model, replay the whole
stream through the same projection code) as a ratio to raw nats-py fetch + ack of the same
stream, in the same run.

`python -m bench.kpi_rebuild [facts]` starts its own embedded Postgres and NATS (no fsync per
write, as bench.kpi_projection), publishes the oracle's random history, projects it live once
(so the replay has a full read model to drop, with the community's rollups in two zones), then
times the replay. It checks that the rebuilt
tables hold exactly the live ones' rows: a fast rebuild that loses rows is no rebuild."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import text

from bench.kpi_projection import projected, raw_fetch_ack
from gatherly.bus import Bus
from gatherly.db import create_engine
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.replay import replay
from gatherly.settings import Settings
from services.kpi.projections import SCHEMA, TABLES, KpiProjection
from services.kpi.queries.zones import ensure_zone
from tests.conftest import free_port
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_support import publish

COMMUNITY = "oracle"  # the generated history's
ZONES = ("UTC", "Europe/Berlin")


async def contents(settings: Settings) -> dict[str, str]:
    """Per read-model table, a digest of every row (in a fixed order)."""
    engine = create_engine(settings.database, SCHEMA, pool_size=1)
    try:
        async with engine.connect() as conn:
            return {t: str(await conn.scalar(text(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, '|'"
                f" ORDER BY r::text)), '') FROM {t} r"))) for t in TABLES}
    finally:
        await engine.dispose()


async def rebuilt(settings: Settings, total: int) -> float:
    """facts/s of the replay, reset included, until it has caught up with the stream."""
    started = time.perf_counter()
    await replay(settings, KpiProjection(), show=False)
    return total / (time.perf_counter() - started)


async def prepared(pg: EmbeddedPostgres, nats: EmbeddedNats) -> Settings:
    conn = await asyncpg.connect(pg.url("postgres"))
    await conn.execute("CREATE DATABASE bench")
    await conn.close()
    settings = Settings(database_url=pg.url("bench"), nats_url=nats.url,
                        stream_name=f"B{uuid.uuid4().hex[:8].upper()}")
    await asyncio.to_thread(migrate, settings.database, SCHEMA, "services.kpi.migrations")
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="bench")
    await bus.ensure_stream(duplicate_window=60)
    await bus.close()
    engine = create_engine(settings.database, SCHEMA, pool_size=1)
    try:  # a community asked about in two zones: live and rebuilt facts feed both rollups
        for zone in ZONES:
            await ensure_zone(engine, COMMUNITY, zone)
    finally:
        await engine.dispose()
    return settings


async def run(root: Path, limit: int) -> None:
    pg = EmbeddedPostgres(root / "pg", free_port(), root / "pg.log")
    nats = EmbeddedNats(root / "nats", free_port(), root / "nats.log", sync_always=False)
    pg.start()
    nats.start()
    try:
        settings = await prepared(pg, nats)
        facts = generate(seed=1)[:limit]
        await publish(settings, facts)
        raw = await raw_fetch_ack(settings, len(facts))
        live = await projected(settings, len(facts))
        before = await contents(settings)
        rebuild = await rebuilt(settings, len(facts))
        same = await contents(settings) == before
        print(f"{len(facts)} facts: raw fetch+ack {raw:,.0f}/s, live projection {live:,.0f}/s,"
              f" rebuild {rebuild:,.0f}/s, ratio {rebuild / raw:.2f};"
              f" rebuilt tables {'identical to' if same else 'DIFFER from'} the live ones")
    finally:
        nats.stop()
        pg.stop()


def main() -> None:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(run(Path(root), limit))


if __name__ == "__main__":
    main()
