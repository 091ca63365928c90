"""Bulk import rows per second through the members importer, vs raw asyncpg COPY of the same rows.

The importer path is what `POST …/members/import` and `gatherly import-members` run: CSV parsed
incrementally from 64 KiB pieces → row checks → per chunk of 2,000 rows the reference hash, a
set-based list insert (ON CONFLICT for idempotence), the `joined` events (each checked against its
contract, COPY) and the profiles (COPY), every chunk on the import's one transaction.

Two baselines, both in the same run on the same server, both timed around the COPY only (rows
parsed and prepared beforehand):

- bare table: the rows, as CSV text, into a table with the same columns and no index at all (the
  issue's baseline, kept as it was);
- the service's own tables: the same rows, already turned into what the importer writes (list
  row with its reference hash, profile, `joined` event), COPYed into copies of `member_list`,
  `member_profile` and `events` made with `LIKE … INCLUDING ALL` (every index, the identity
  columns, the profile's foreign key added), so Postgres maintains the same indexes. This shows
  what the indexes cost on their own; it does not replace the first ratio.

Run: `.venv/bin/python -m bench.members_import [rows]` (default 50000).
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.members_common import members_database
from gatherly.settings import to_libpq_url
from services.members.cli_import import import_path
from services.members.personal import ref_hash, search_key

COLUMNS = ["channel", "external_ref", "display_name", "email", "city", "interests"]
COMMUNITY = "bench"
_OWN_TABLES = (
    "CREATE TABLE copy_list (LIKE member_list INCLUDING ALL);"
    " CREATE TABLE copy_profile (LIKE member_profile INCLUDING ALL);"
    " ALTER TABLE copy_profile ADD FOREIGN KEY (member_id) REFERENCES copy_list (id)"
    " ON DELETE CASCADE;"
    " CREATE TABLE copy_events (LIKE events INCLUDING ALL)"
)
_LIST_COLUMNS = ["id", "community_id", "channel", "status", "external_ref_hash", "joined_at",
                 "version"]
_PROFILE_COLUMNS = ["member_id", "community_id", "display_name", "email", "handles", "city",
                    "interests", "name_key", "email_key", "external_ref"]
_EVENT_COLUMNS = ["id", "stream_id", "community_id", "type", "version", "occurred_at", "data"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for i in range(rows):
            writer.writerow(["telegram", f"tg-{i}", f"Member {i}", f"member{i}@example.org",
                             "Riga", "music;ai"])


def read_rows(path: Path) -> list[tuple[str, ...]]:
    with path.open(newline="") as source:
        return [tuple(row) for row in csv.reader(source)][1:]


async def raw_copy(url: str, path: Path) -> float:
    """The issue's baseline: COPY into a bare table, no index."""
    records = read_rows(path)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE copy_baseline (channel text, external_ref text,"
                           " display_name text, email text, city text, interests text)")
        start = time.perf_counter()
        await conn.copy_records_to_table("copy_baseline", records=records, columns=COLUMNS)
        return len(records) / (time.perf_counter() - start)
    finally:
        await conn.close()


def own_records(key: str, rows: list[tuple[str, ...]]) -> tuple[list[Any], list[Any], list[Any]]:
    """What the importer writes for each row, prepared outside the timed part."""
    now = datetime.now(UTC)
    listed, profiles, events = [], [], []
    for channel, ref, name, email, city, interests in rows:
        member_id = uuid.uuid4()
        hashed = ref_hash(key, COMMUNITY, channel, ref)
        listed.append((member_id, COMMUNITY, channel, "active", hashed, now, 1))
        profiles.append((member_id, COMMUNITY, name, email, "{}", city,
                         interests.split(";"), search_key(name), search_key(email), ref))
        data = {"channel": channel, "joined_at": now.isoformat(), "external_ref": hashed}
        events.append((uuid.uuid4(), str(member_id), COMMUNITY, "gatherly.member.joined", 1,
                       now, json.dumps(data)))
    return listed, profiles, events


async def own_tables_copy(url: str, path: Path) -> float:
    """Second baseline: COPY into copies of the service's own tables, every index kept."""
    conn = await asyncpg.connect(url, server_settings={"search_path": "members,public"})
    try:
        await conn.execute(_OWN_TABLES)
        key = str(await conn.fetchval("SELECT key FROM ref_hash_key"))
        listed, profiles, events = own_records(key, read_rows(path))
        start = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("copy_list", records=listed, columns=_LIST_COLUMNS)
            await conn.copy_records_to_table("copy_events", records=events,
                                             columns=_EVENT_COLUMNS)
            await conn.copy_records_to_table("copy_profile", records=profiles,
                                             columns=_PROFILE_COLUMNS)
        return len(listed) / (time.perf_counter() - start)
    finally:
        await conn.close()


async def main(rows: int) -> None:
    async with members_database() as settings:
        path = settings.data_dir / "members.csv"
        write_csv(path, rows)
        url = to_libpq_url(settings.database)
        raw = await raw_copy(url, path)
        own = await own_tables_copy(url, path)
        start = time.perf_counter()
        report = await import_path(settings, COMMUNITY, path)
        imported = report.created / (time.perf_counter() - start)
        assert report.created == rows, report
    print(f"members import, {rows} CSV rows")
    print(f"  raw asyncpg COPY, bare table (no index)     {raw:9.0f} rows/s")
    print(f"  raw asyncpg COPY, the service's own tables  {own:9.0f} rows/s")
    print(f"  members importer                            {imported:9.0f} rows/s")
    print(f"  ratio importer / bare-table COPY (goal)     {imported / raw:9.2%}")
    print(f"  ratio importer / own-tables COPY            {imported / own:9.2%}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
