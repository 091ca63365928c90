"""Check-ins per second through the events app in-process, vs a bare asyncpg INSERT per row.

The app path is the whole command: HTTP (ASGI, in-process) → load the event and the member's seat
from the read model `FOR UPDATE` → decide → append to the event store (contract check, version
check) → update the read model → commit → read the seat back for the answer. The baseline inserts
the same number of rows, one autocommitted INSERT each, into a bare table on the same server.
Both run one request at a time: the point is the per-command cost, and one event's commands
serialise on its row anyway. The event has `count` registrations, so the time also shows that a
check-in's cost does not grow with the event's size.

Run: `.venv/bin/python -m bench.events_checkin [count]` (default 2000).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench.system import free_ports
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.settings import Settings, to_libpq_url
from services.events.app import create_app

HEADERS = {"X-Gatherly-Community": "bench", "X-Gatherly-Scopes": "read,write"}
BASE = "/v1/communities/bench/events"


async def app_check_ins(settings: Settings, count: int) -> float:
    """Check-ins per second of `count` registered members, through the app."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://events",
                                 headers=HEADERS) as client:
        event = (await client.post(BASE, json={
            "title": "Bench night", "format": "offline", "place": "Hall",
            "starts_at": "2030-01-01T18:00:00+00:00", "ends_at": "2030-01-01T22:00:00+00:00",
            "time_zone": "UTC", "channel": "website"})).json()
        url = f"{BASE}/{event['id']}"
        (await client.post(f"{url}/open-registration")).raise_for_status()
        members = [str(uuid.uuid4()) for _ in range(count)]
        for member in members:
            answer = await client.post(f"{url}/registrations",
                                       json={"member_id": member, "channel": "vk"})
            answer.raise_for_status()
        started = time.perf_counter()
        for member in members:
            answer = await client.post(f"{url}/check-ins", json={"member_id": member})
            if answer.status_code != 201:
                raise AssertionError(f"check-in answered {answer.status_code}: {answer.text}")
        elapsed = time.perf_counter() - started
        attended = (await client.get(url)).json()["attended"]
        assert attended == count, f"{attended} of {count} check-ins recorded"
    await app.state.engine.dispose()
    return count / elapsed


async def raw_inserts(url: str, count: int) -> float:
    """Rows per second: one autocommitted asyncpg INSERT of an attendance-sized row each."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE raw_checkin (event_id uuid, member_id uuid, channel text,"
            " checked_in_at timestamptz DEFAULT now(), PRIMARY KEY (event_id, member_id))")
        event_id = uuid.uuid4()
        members = [uuid.uuid4() for _ in range(count)]
        started = time.perf_counter()
        for member in members:
            await conn.execute(
                "INSERT INTO raw_checkin (event_id, member_id, channel) VALUES ($1, $2, 'vk')",
                event_id, member)
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gatherly-bench-") as directory:
        root = Path(directory)
        [pg_port] = free_ports(1)
        postgres = EmbeddedPostgres(root / "pg", pg_port, root / "pg.log")
        postgres.start()
        try:
            settings = Settings(data_dir=root, database_url=postgres.url("postgres"))
            await asyncio.to_thread(migrate, settings.database, "events",
                                    "services.events.migrations")
            raw = await raw_inserts(to_libpq_url(settings.database), count)
            app = await app_check_ins(settings, count)
        finally:
            postgres.stop()
    print(f"events check-in, {count} members, one at a time")
    print(f"  bare asyncpg INSERT     {raw:9.0f} rows/s")
    print(f"  events app (in-process) {app:9.0f} check-ins/s")
    print(f"  ratio app/raw           {app / raw:9.2%}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
