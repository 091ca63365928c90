"""KPI query latency for a big community: 1M members and 10M facts over a year, asked for one
year at day granularity, through the KPI service's HTTP API in-process (httpx ASGI transport),
next to a raw baseline: the same app answering a constant JSON.

`python -m bench.kpi_query [scale] [requests] [--data DIR] [--only a,b]` starts its own embedded
Postgres, in a temporary directory or in DIR: a DIR that already holds a community of the same
scale is reused (migrated, so new rollups are filled by their migration, as on a real upgrade),
which saves the ~9 minutes of load and backfill at scale 1.0. `--only` asks only the endpoints
named. The facts are
written straight into the KPI store with `generate_series` (the projection would take far too
long for 10M facts; its throughput is bench/kpi_projection.py's subject), then the community's
zone is registered and its rollups filled by the same backfill the service runs on a zone's first
question. `scale` 1.0 is 1M members / ~10M facts; 0.01 is a quick check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.settings import Settings
from services.kpi.app import create_app
from services.kpi.facts.changing import EVENT_REGISTRATIONS_FROM_FACTS
from services.kpi.facts.content_views import FROM_FACTS as CONTENT_VIEWS_FROM_FACTS
from services.kpi.facts.events import FIRST_ATTENDANCES_FROM_FACTS
from services.kpi.facts.participants import EVENT_PARTICIPANTS_FROM_FACTS
from services.kpi.facts.roles import HOLDERS_FROM_FACTS
from services.kpi.facts.rollups import backfill
from services.kpi.facts.speed import FIRST_DELAYS_FROM_FACTS, FIRSTS_FROM_FACTS
from tests.conftest import free_port

COMMUNITY, ZONE = "big", "Europe/Berlin"
WINDOW = {"from": "2025-01-01", "to": "2025-12-31", "granularity": "day"}
ENDPOINTS = ("members", "views", "reactions", "channels", "events", "feedback", "active",
             "retention", "roles", "followups", "summary")
GOAL_MS = 20.0
SLOW_SECONDS = 60.0  # an endpoint slower than this per N requests is asked fewer times (>= 5)

CHANNEL = "(ARRAY['telegram','vk','email','website','discord','offline'])[1 + ({i}) % 6]"
# A skewed member per fact (a few members do most): deterministic from the fact's id.
MEMBER = ("'m' || (1 + floor(:members"
          " * power((hashtext(CAST({id} AS text)) & 1048575) / 1048576.0, 3)))")
YEAR = "timestamptz '2025-01-01 00:00+00'"


def load_statements(members: int, facts: int) -> list[str]:
    views, reactions = int(facts * 0.65), int(facts * 0.2)
    content, events = max(10, facts // 2000), max(5, facts // 20000)
    regs, feedback = facts // 50, facts // 200
    pub = f"{YEAR} + ((k * 365.0 / {content}) * interval '1 day')"
    return [
        f"""INSERT INTO member_changes SELECT :c, 'm' || i, 1, 'joined', {CHANNEL.format(i='i')},
            {YEAR} - interval '365 days' + (i * 730.0 / {members}) * interval '1 day'
            FROM generate_series(1, {members}) i""",
        """INSERT INTO member_changes SELECT community_id, member_id, 2, 'left', channel,
            at + interval '30 days' FROM member_changes WHERE substr(member_id, 2)::int % 10 = 0""",
        """INSERT INTO member_changes SELECT community_id, member_id, 3, 'rejoined', channel,
            at + interval '30 days' FROM member_changes WHERE kind = 'left'
            AND substr(member_id, 2)::int % 20 = 0""",
        """INSERT INTO members SELECT community_id, member_id, min(channel),
            CASE WHEN max(seq) = 2 THEN 'left' ELSE 'member' END, min(at) FROM member_changes
            GROUP BY 1, 2""",
        f"""INSERT INTO member_roles SELECT :c, 'm' || i,
            (ARRAY['mentor','guide','hero'])[1 + i % 3] FROM generate_series(1, {members}, 97) i""",
        f"""INSERT INTO content SELECT :c, 'p' || k, {CHANNEL.format(i='k')}, 'post', {pub}
            FROM generate_series(1, {content}) k""",
        f"""INSERT INTO views SELECT :c, 'v' || i, 'p' || k, {CHANNEL.format(i='k')}, 1,
            {pub} + random() * interval '7 days'
            FROM generate_series(1, {views}) i, LATERAL (SELECT 1 + i % {content} AS k) c""",
        f"""INSERT INTO reaction_facts SELECT :c, 'r' || i, 1, 'p' || k,
            (ARRAY['like','fire','heart'])[1 + i % 3], {CHANNEL.format(i='k')}, i % 10 <> 0,
            {pub} + random() * interval '3 days'
            FROM generate_series(1, {reactions}) i, LATERAL (SELECT 1 + i % {content} AS k) c""",
        f"""INSERT INTO view_counters SELECT :c, 'p' || k, 'platform', {CHANNEL.format(i='k')},
            100, {pub} + interval '3 days' FROM generate_series(1, {content}) k""",
        f"""INSERT INTO reaction_counters SELECT :c, 'p' || k, 'platform', 'like',
            {CHANNEL.format(i='k')}, 10, {pub} + interval '3 days'
            FROM generate_series(1, {content}) k""",
        f"""INSERT INTO community_events SELECT :c, 'e' || k, 'offline', {pub}, {pub} + interval
            '2 hours', NULL, {pub} + interval '2 hours' FROM generate_series(1, {events}) k""",
        f"""INSERT INTO registrations SELECT :c, 'e' || (1 + i % {events}), {MEMBER.format(id='i')},
            'website', {YEAR} + ((1 + i % {events}) * 365.0 / {events} - 3) * interval '1 day',
            NULL FROM generate_series(1, {regs}) i ON CONFLICT DO NOTHING""",
        """INSERT INTO attendances SELECT r.community_id, r.event_id, r.member_id, 'offline',
            e.starts_at + interval '5 minutes', false FROM registrations r JOIN community_events e
            USING (community_id, event_id) WHERE hashtext(r.member_id) % 4 <> 0""",
        f"""INSERT INTO feedback SELECT :c, 'f' || i, 'email', s, CASE WHEN i % 5 <> 0 THEN
            s + random() * interval '48 hours' END, CASE WHEN i % 3 <> 0 THEN
            s + interval '72 hours' END FROM generate_series(1, {feedback}) i,
            LATERAL (SELECT {YEAR} + (random() + 0 * i) * interval '365 days' AS s) t""",
        # (`i` makes the LATERAL correlated: without it Postgres computed one moment for all.)
        f"""INSERT INTO activity SELECT DISTINCT :c, m, date_trunc('minute', at) FROM (
            SELECT {MEMBER.format(id='view_id')} AS m, at FROM views
            UNION ALL SELECT {MEMBER.format(id='reaction_id')}, at FROM reaction_facts
            UNION ALL SELECT member_id, at FROM member_changes WHERE kind <> 'left'
            UNION ALL SELECT member_id, registered_at FROM registrations
            UNION ALL SELECT member_id, checked_in_at FROM attendances) f""",
        # What the projection keeps beside the facts, zone-free (the zone's rollups: backfill).
        FIRSTS_FROM_FACTS,
        FIRST_DELAYS_FROM_FACTS,  # after the first reactions
        CONTENT_VIEWS_FROM_FACTS,
        FIRST_ATTENDANCES_FROM_FACTS,
        EVENT_PARTICIPANTS_FROM_FACTS,  # after the first attendances
        EVENT_REGISTRATIONS_FROM_FACTS,
        HOLDERS_FROM_FACTS,
    ]


async def build(url: str, scale: float) -> None:
    members, facts = int(1_000_000 * scale), int(10_000_000 * scale)
    conn = await asyncpg.connect(url)
    await conn.execute("SET search_path TO kpi; SET work_mem = '256MB';"
                       " SET maintenance_work_mem = '512MB'; SET synchronous_commit = off")
    started = time.perf_counter()
    for statement in load_statements(members, facts):
        await conn.execute(
            statement.replace(":members", str(members)).replace(":c", f"'{COMMUNITY}'"))
    await conn.execute("VACUUM ANALYZE")
    counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in (
        "member_changes", "views", "reaction_facts", "registrations", "attendances", "feedback",
        "activity")}
    loaded = time.perf_counter() - started
    print(f"loaded in {loaded:.0f} s: {counts}", flush=True)
    await conn.close()


async def backfilled(settings: Settings) -> None:
    # The service's backfill, on an engine without the service's 30 s command timeout.
    engine = create_async_engine(settings.database, connect_args={
        "server_settings": {"search_path": "kpi,public"}, "command_timeout": None})
    started = time.perf_counter()
    async with engine.begin() as conn:
        await backfill(conn, COMMUNITY, ZONE)
    async with engine.begin() as conn:  # committed: statistics a rolled back ANALYZE wrote go
        await conn.exec_driver_sql("ANALYZE")
    print(f"rollups backfilled for {ZONE} in {time.perf_counter() - started:.0f} s", flush=True)
    await engine.dispose()


async def timed(client: httpx.AsyncClient, path: str, n: int) -> list[float]:
    took = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get(path, params=WINDOW)
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return took


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def measure(settings: Settings, requests: int, endpoints: tuple[str, ...]) -> None:
    app = create_app(settings)
    app.add_api_route("/constant", lambda: {"community_id": COMMUNITY, "total": 1})
    headers = {"X-Gatherly-Community": COMMUNITY, "X-Gatherly-Scopes": "read",
               "X-Gatherly-Community-Time-Zone": ZONE}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kpi",
                                 headers=headers) as client:
        raw = await _series(client, "/constant", requests)
        print(f"{'endpoint':<20} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} {'p99/raw':>8}"
              "  goal p99<=20ms")
        _row("raw (constant JSON)", raw, raw)
        for name in endpoints:
            path = f"/v1/communities/{COMMUNITY}/kpis/{name}"
            _row(name, await _series(client, path, requests), raw)
    await app.state.engine.dispose()


def _row(name: str, took: list[float], raw: list[float]) -> None:
    p99 = quantile(took, 99)
    verdict = "" if took is raw else "met" if p99 <= GOAL_MS else "MISSED"
    print(f"{name:<20} {len(took):>4} {quantile(took, 50):>9.1f} {p99:>9.1f}"
          f" {p99 / quantile(raw, 99):>8.1f}  {verdict}", flush=True)


async def _series(client: httpx.AsyncClient, path: str, requests: int) -> list[float]:
    warm = max(await timed(client, path, 3)) / 1000
    n = requests if warm * requests < SLOW_SECONDS else max(5, int(SLOW_SECONDS / warm))
    return await timed(client, path, n)


async def run(root: Path, scale: float, requests: int, endpoints: tuple[str, ...],
              built: Path | None = None) -> None:
    """`built`: the marker of a community already built at this scale in `root` (reused when it
    exists, written once one is built)."""
    reuse = built is not None and await asyncio.to_thread(built.exists)
    pg = EmbeddedPostgres(root / "pg", free_port(), root / "pg.log")
    pg.start()
    try:
        if not reuse:
            conn = await asyncpg.connect(pg.url("postgres"))
            await conn.execute("DROP DATABASE IF EXISTS bench")
            await conn.execute("CREATE DATABASE bench")
            await conn.close()
        settings = Settings(database_url=pg.url("bench"))
        await asyncio.to_thread(migrate, settings.database, "kpi", "services.kpi.migrations")
        if reuse:
            print(f"reusing the community built at scale {scale} in {root}", flush=True)
            conn = await asyncpg.connect(pg.url("bench"))
            await conn.execute("ANALYZE")  # what a migration just filled has no statistics yet
            await conn.close()
        else:
            await build(pg.url("bench"), scale)
            await backfilled(settings)
            if built is not None:
                await asyncio.to_thread(built.touch)
        await measure(settings, requests, endpoints)
    finally:
        pg.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.kpi_query")
    parser.add_argument("scale", type=float, nargs="?", default=1.0)
    parser.add_argument("requests", type=int, nargs="?", default=200)
    parser.add_argument("--data", type=Path, help="keep the database here and reuse it")
    parser.add_argument("--only", help="comma-separated endpoints (default: all)")
    args = parser.parse_args()
    endpoints = tuple(args.only.split(",")) if args.only else ENDPOINTS
    if args.data:
        root = args.data.resolve()
        root.mkdir(parents=True, exist_ok=True)
        built = root / f"built-{args.scale}"
        for stale in root.glob("built-*"):
            if stale != built:
                stale.unlink()
        asyncio.run(run(root, args.scale, args.requests, endpoints, built))
        return
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(run(Path(root), args.scale, args.requests, endpoints))


if __name__ == "__main__":
    main()
