"""Member list and name/e-mail prefix search at N members: the plans and the latency.

N members are imported (the bulk importer) into a throwaway embedded Postgres with names and
e-mails in Latin, Cyrillic and accented Latin, a quarter each starting with a non-ASCII capital.
Then, through the members app in process (httpx's ASGI transport, one request at a time), the
median and p90 of `GET /members` (the first page with its total, 50 a page) with no filter and
with several `q` prefixes, and `EXPLAIN (ANALYZE, BUFFERS)` of the search's page and count for
each prefix (whole for the first, the scans and times for the others): a selective prefix must
use an index, not read every profile.

Run: `.venv/bin/python -m bench.members_search [members] [repeats]` (defaults 100000, 30).
"""

from __future__ import annotations

import asyncio
import csv
import statistics
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.members_common import BASE, HEADERS, members_database
from services.members.app import create_app
from services.members.cli_import import import_path
from services.members.search import MemberFilter, _conditions
from services.members.views import MEMBER_COLUMNS, MEMBER_FROM

COMMUNITY = "bench"
FIRST = ["Anna", "Мария", "Ёлка", "Ünïcødé", "Boris", "Ольга", "Zoë", "Émile"]
LAST = ["Lee", "Иванова", "Smirnova", "Straße", "Petrov", "Søren", "Ålund", "Orr"]
# Prefixes a user types: a rare name (1/8 of members start with it), a rarer full name, an
# e-mail, and one nobody has.
QUERIES = ["", "мар", "МАРИЯ ИВ", "ünï", "anna", "ÉMILE Å", "ёлка10", "zz-nobody"]  # noqa: RUF001


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["channel", "external_ref", "display_name", "email"])
        for i in range(rows):
            first, last = FIRST[i % 8], LAST[(i // 8) % 8]
            writer.writerow(["telegram", f"tg-{i}", f"{first} {last} {i}",
                             f"{first.lower()}{i}@example.org"])


async def latency(client: httpx.AsyncClient, query: str, repeats: int) -> tuple[float, float, int]:
    params = {"q": query} if query else {}
    times, total = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        response = await client.get(BASE, params=params)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
        total = int(response.json().get("total") or 0)
    return statistics.median(times), statistics.quantiles(times, n=10)[-1], total


async def explain(engine: object, query: str, *, full: bool) -> list[str]:
    """The page's and the count's plans for `query`: whole, or only their scans and times."""
    conditions, params = _conditions(COMMUNITY, MemberFilter(prefix=query))
    clause = " AND ".join(conditions)
    page = (f"SELECT {MEMBER_COLUMNS} FROM {MEMBER_FROM} WHERE {clause} AND l.listed > 0"
            " ORDER BY l.listed LIMIT 51")
    count = f"SELECT count(*) FROM {MEMBER_FROM} WHERE {clause}"
    lines = []
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        for name, sql in (("page", page), ("count", count)):
            plan = await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), params)
            lines += [f"  {query} [{name}] {row[0].strip() if not full else row[0]}"
                      for row in plan if full or "Scan" in row[0] or "Execution" in row[0]]
    return lines


async def main(members: int, repeats: int) -> None:
    async with members_database() as settings:
        path = settings.data_dir / "members.csv"
        write_csv(path, members)
        start = time.perf_counter()
        report = await import_path(settings, COMMUNITY, path)
        took = time.perf_counter() - start
        assert report.created == members, report
        app = create_app(settings)
        async with app.state.engine.begin() as conn:
            await conn.execute(text("ANALYZE member_list"))
            await conn.execute(text("ANALYZE member_profile"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://members",
                                     headers=HEADERS) as client:
            print(f"members search, {members} members (imported at"
                  f" {members / took:.0f} rows/s), {repeats} requests each")
            print(f"  {'q':<12} {'found':>7} {'p50 ms':>8} {'p90 ms':>8}")
            for query in QUERIES:
                await latency(client, query, 3)  # warm
                p50, p90, total = await latency(client, query, repeats)
                print(f"  {query or '(none)':<12} {total:>7} {p50:>8.2f} {p90:>8.2f}")
        for query in QUERIES[1:]:
            for line in await explain(app.state.engine, query, full=query == "мар"):
                print(line)
        await app.state.engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 30))
