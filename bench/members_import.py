"""Bulk import rows per second through the members importer, vs raw asyncpg COPY of the same rows.

The importer path is what `POST …/members/import` and `gatherly import-members` run: CSV parsed
incrementally from 64 KiB pieces → row checks → per chunk of 1,000 rows one transaction with the
reference hash, a set-based list insert (ON CONFLICT for idempotence), the `joined` events (each
checked against its contract) and the profiles. The baseline COPYs the same rows, already parsed,
into a bare table with the same columns on the same server, in the same run.

Run: `.venv/bin/python -m bench.members_import [rows]` (default 50000).
"""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from pathlib import Path

import asyncpg

from bench.members_common import members_database
from gatherly.settings import to_libpq_url
from services.members.cli_import import import_path

COLUMNS = ["channel", "external_ref", "display_name", "email", "city", "interests"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for i in range(rows):
            writer.writerow(["telegram", f"tg-{i}", f"Member {i}", f"member{i}@example.org",
                             "Riga", "music;ai"])


async def raw_copy(url: str, path: Path) -> float:
    with path.open(newline="") as source:
        records = [tuple(row) for row in csv.reader(source)][1:]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE copy_baseline (channel text, external_ref text,"
                           " display_name text, email text, city text, interests text)")
        start = time.perf_counter()
        await conn.copy_records_to_table("copy_baseline", records=records, columns=COLUMNS)
        return len(records) / (time.perf_counter() - start)
    finally:
        await conn.close()


async def main(rows: int) -> None:
    async with members_database() as settings:
        path = settings.data_dir / "members.csv"
        write_csv(path, rows)
        raw = await raw_copy(to_libpq_url(settings.database), path)
        start = time.perf_counter()
        report = await import_path(settings, "bench", path)
        imported = report.created / (time.perf_counter() - start)
        assert report.created == rows, report
    print(f"members import, {rows} CSV rows")
    print(f"  raw asyncpg COPY         {raw:9.0f} rows/s")
    print(f"  members importer         {imported:9.0f} rows/s")
    print(f"  ratio importer/COPY      {imported / raw:9.2%}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
