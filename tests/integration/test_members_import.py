"""Bulk import through the API and the CLI against real Postgres: per-row report, idempotence by
external reference, nothing written for an unreadable upload, bounded memory at 100,000 rows."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.cli import main as gatherly
from gatherly.db import create_engine
from gatherly.eventstore import EventStore
from gatherly.settings import Settings
from services.members.import_rows import ImportFormat
from services.members.importer import MemberImporter
from tests.integration.test_members_api import BASE, client, event_count, settings

__all__ = ["client", "settings"]

CSV = "text/csv"
NDJSON = "application/x-ndjson"


async def pieces(data: bytes, size: int = 37) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def upload(client: httpx.AsyncClient, data: bytes, content_type: str) -> httpx.Response:
    return await client.post(f"{BASE}/import", content=pieces(data),
                             headers={"Content-Type": content_type})


async def test_a_csv_import_reports_every_row_and_a_second_run_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    scout = (await client.post(BASE, json={"channel": "offline"})).json()["id"]
    data = (
        "channel,external_ref,display_name,email,invited_by,interests\n"
        f"telegram,t1,Ann,ann@example.org,{scout},music;ai\n"
        "telegram,t2,Bob,bob@example.org,,\n"
        "telegram,t1,Ann again,,,\n"
        "vk,v1,Cleo,not-an-email,,\n"
        "Bad Channel,x1,Dan,,,\n"
        "vk,v2,Eve,,00000000-0000-0000-0000-0000000000aa,\n"
        "email,,Fay,,,\n"
    ).encode()
    report = (await upload(client, data, CSV)).json()
    assert {k: report[k] for k in ("rows", "created", "present", "rejected")} == {
        "rows": 7, "created": 3, "present": 1, "rejected": 3}
    assert [(r["row"], r["field"]) for r in report["rejections"]] == [
        (5, "email"), (6, "channel"), (7, "invited_by")]
    assert await event_count(client) == 4

    again = (await upload(client, data, CSV)).json()
    assert (again["created"], again["present"], again["rejected"]) == (1, 3, 3)  # Fay has no ref
    assert await event_count(client) == 5
    found = (await client.get(BASE, params={"tag": "music"})).json()["items"]
    assert [(m["display_name"], m["invited_by"]) for m in found] == [("Ann", scout)]


async def test_an_ndjson_import_joins_the_same_people_a_single_join_would(
    client: httpx.AsyncClient,
) -> None:
    single = (await client.post(BASE, json={"channel": "vk", "external_ref": "v9"})).json()
    lines = [{"channel": "vk", "external_ref": "v9"},
             {"channel": "vk", "external_ref": "v10", "handles": {"vk": "id10"},
              "joined_at": "2025-05-01T09:00:00+03:00"},
             "not an object"]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    report = (await upload(client, data, NDJSON)).json()
    assert (report["created"], report["present"], report["rejected"]) == (1, 1, 1)
    listed = (await client.get(BASE)).json()["items"]
    assert listed[0]["id"] == single["id"]
    assert listed[1]["handles"] == {"vk": "id10"}
    assert listed[1]["joined_at"].startswith("2025-05-01T06:00:00")


async def test_an_unreadable_upload_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    wrong_type = await upload(client, b"channel\nvk\n", "application/json")
    assert wrong_type.status_code == 415
    bad_header = await upload(client, b"channel,phone\nvk,123\n", CSV)
    assert bad_header.status_code == 422 and "phone" in bad_header.json()["detail"]
    assert bad_header.headers["content-type"] == "application/problem+json"
    assert await event_count(client) == 0


async def test_the_cli_imports_a_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATHERLY_DATABASE_URL", settings.database)
    file = tmp_path / "members.csv"
    file.write_text("channel,external_ref,city\ntelegram,t1,Riga\nvk,v1,Oslo\nvk,v1,Oslo\n")
    code = await asyncio.to_thread(gatherly, ["import-members", "c1", str(file)])
    assert code == 0
    shown = capfd.readouterr()
    # The progress bar (stderr) ends on the whole file read and the counts so far; the report
    # goes to stdout.
    size = file.stat().st_size
    assert f"2 created, 1 present, 0 rejected {'━' * 10}" in shown.err, shown.err
    assert f"{size}/{size} bytes" in shown.err, shown.err
    assert "rows 3: created 2, already present 1" in shown.out, shown.out
    again = await asyncio.to_thread(gatherly, ["import-members", "c1", str(file)])
    assert again == 0
    engine = create_engine(settings.database, "members")
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 2
    await engine.dispose()


async def test_the_cli_writes_nothing_of_a_file_unreadable_near_its_end(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATHERLY_DATABASE_URL", settings.database)
    file = tmp_path / "members.csv"
    rows = b"".join(b"vk,v%d\n" % i for i in range(20_000))  # three 64 KiB pieces
    file.write_bytes(b"channel,external_ref\n" + rows + b"vk,caf\xe9\n")
    code = await asyncio.to_thread(gatherly, ["import-members", "c1", str(file)])
    assert code == 2
    assert "not UTF-8 on line 20002" in capfd.readouterr().err
    engine = create_engine(settings.database, "members")
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 0
    await engine.dispose()


# The 100,000-row run happens in a child process so that its peak resident memory is its own.
# It writes a ~30 MB CSV, warms up with a small import (imports, pools, caches), then imports the
# big file in 64 KiB pieces; reading the file whole would cost its size in bytes plus as much
# again decoded, far above the bound.
MEMORY_RUN = r"""
import asyncio, json, resource, sys, time
from pathlib import Path
from gatherly.settings import Settings
from services.members.cli_import import import_path

settings, path, rows = Settings(database_url=sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
with path.open("w") as out:
    out.write("channel,external_ref,display_name,email,city,interests,handles\n")
    for i in range(rows):
        out.write(f"telegram,tg-{i},{'Member number ' + str(i) + ' ' + 'x' * 130},"
                  f"member{i}@example.org,{'City ' + 'y' * 50},music;ai;hiking,"
                  f"telegram:@member{i};vk:id{i}\n")
warm = path.with_name("warm.csv")
warm.write_text("channel,external_ref\n" + "".join(f"vk,w{i}\n" for i in range(2000)))
asyncio.run(import_path(settings, "warm", warm))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
report = asyncio.run(import_path(settings, "big", path))
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"created": report.created, "rejected": report.rejected, "seconds": seconds,
                  "growth_kib": after - before, "file_bytes": path.stat().st_size}))
"""


async def test_100k_rows_import_in_one_go_with_bounded_memory(
    settings: Settings, tmp_path: Path
) -> None:
    rows = 100_000
    started = time.perf_counter()
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", MEMORY_RUN, settings.database, str(tmp_path / "big.csv"),
         str(rows)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"100k import: {measured}, whole test {time.perf_counter() - started:.1f}s")
    assert (measured["created"], measured["rejected"]) == (rows, 0)
    assert measured["file_bytes"] > 25_000_000
    # Peak growth during the import stays under half the file's size.
    assert measured["growth_kib"] * 1024 < measured["file_bytes"] / 2, measured


def refs_csv(refs: list[str]) -> bytes:
    return ("channel,external_ref\n" + "".join(f"vk,{ref}\n" for ref in refs)).encode()


async def listed_refs(engine: AsyncEngine, community: str) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(
            "SELECT p.external_ref FROM member_list l JOIN member_profile p ON p.member_id = l.id"
            " WHERE l.community_id = :c ORDER BY l.listed"), {"c": community})).scalars())


@pytest.fixture
async def importer(settings: Settings) -> AsyncIterator[MemberImporter]:
    engine = create_engine(settings.database, "members")
    yield MemberImporter(engine, EventStore(source="/gatherly/members"), chunk_rows=200)
    await engine.dispose()


async def test_chunks_with_the_same_references_list_in_file_order(
    importer: MemberImporter,
) -> None:
    # Two chunks of 200 with the same references in opposite orders, in one import: the second
    # finds every row of the first present. (Written side by side, as they once were, each
    # would have waited for the other's rows: four rounds made a deadlock likely.)
    refs = [f"r{i}" for i in range(200)]
    for community in ("c1", "c2", "c3", "c4"):
        report = await importer.run(community, pieces(refs_csv(refs + refs[::-1]), 4096),
                                    ImportFormat.CSV)
        assert (report.created, report.present, report.rejected) == (200, 200, 0)
        assert await listed_refs(importer.engine, community) == refs


def fail_the_chunk_of(importer: MemberImporter, monkeypatch: pytest.MonkeyPatch, ref: str) -> None:
    """The chunk holding `ref` fails as its profiles are written: the database went away."""
    copy_profiles = importer._copy_profiles

    async def failing(conn: AsyncConnection, records: list[tuple[object, ...]]) -> None:
        if any(record[-1] == ref for record in records):
            raise RuntimeError("the database went away")
        await copy_profiles(conn, records)

    monkeypatch.setattr(importer, "_copy_profiles", failing)


async def test_a_failed_chunk_rolls_the_whole_import_back_and_a_second_run_completes_it(
    importer: MemberImporter, monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs = [f"r{i}" for i in range(1000)]
    fail_the_chunk_of(importer, monkeypatch, "r200")  # the second chunk
    with pytest.raises(RuntimeError, match="went away"):
        await importer.run("c1", pieces(refs_csv(refs), 4096), ImportFormat.CSV)
    assert await listed_refs(importer.engine, "c1") == []  # the first chunk too
    async with importer.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 0

    monkeypatch.undo()
    report = await importer.run("c1", pieces(refs_csv(refs), 4096), ImportFormat.CSV)
    assert (report.created, report.present) == (len(refs), 0)
    assert await listed_refs(importer.engine, "c1") == refs
    async with importer.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == len(refs)


async def test_two_imports_of_one_community_with_opposite_orders_both_complete(
    importer: MemberImporter,
) -> None:
    # Each import is one transaction: side by side, the first chunk of one would list the
    # references the other's second chunk wants, and the other way round (a deadlock, a 5xx).
    # They run one after the other instead, and the second finds every row present.
    refs = [f"r{i}" for i in range(400)]
    reports = await asyncio.gather(
        importer.run("c1", pieces(refs_csv(refs), 4096), ImportFormat.CSV),
        importer.run("c1", pieces(refs_csv(refs[::-1]), 4096), ImportFormat.CSV))
    assert sorted((r.created, r.present) for r in reports) == [(0, 400), (400, 0)]
    async with importer.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == len(refs)


@pytest.mark.parametrize("tail", [b'vk,"unclosed\n', b"vk,caf\xe9\n"])
async def test_an_upload_unreadable_near_its_end_writes_none_of_its_rows(
    client: httpx.AsyncClient, tail: bytes
) -> None:
    """QA finding (fails on f581aa7): 5,000 good rows then an unclosed quote (or a byte that is
    not UTF-8) answered 422 "Unreadable import" with 4,000 members already created; the caller
    sees a 4xx, fixes the file, uploads again, and every row without a reference is doubled."""
    rows = b"".join(b"vk,Person %d\n" % i for i in range(5_000))
    response = await upload(client, b"channel,display_name\n" + rows + tail, CSV)
    assert response.status_code == 422, response.text
    assert await event_count(client) == 0
