"""The bulk import's per-row report against real Postgres: through the API with
`Accept: application/x-ndjson`, through the CLI's report file, and when a chunk fails; at the
end, the pure part that puts the lines in file order."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.cli import main as gatherly
from gatherly.settings import Settings
from services.members.cli_import import import_members
from services.members.import_rows import (
    CREATED,
    PRESENT,
    ImportFormat,
    ImportReport,
    Rejection,
    RowReportLines,
    outcome_line,
    rejection_line,
    summary_line,
)
from services.members.importer import MemberImporter
from tests.integration.test_members_api import BASE, client, settings
from tests.integration.test_members_import import (
    CSV,
    MEMORY_RUN,
    fail_the_chunk_of,
    importer,
    pieces,
    refs_csv,
)

__all__ = ["client", "importer", "settings"]

ROWS = "application/x-ndjson"
UNKNOWN_REFERRER = "00000000-0000-0000-0000-0000000000aa"


def mixed_csv(scout: str) -> bytes:
    """Created, present (known before), duplicates in the file, rejected (by the reader and by
    the writer), a row without reference; line numbers 2 to 11."""
    return (
        "channel,external_ref,display_name,email,invited_by\n"
        "telegram,t1,Ann,,\n"  # 2 created
        "vk,v-old,Old again,,\n"  # 3 present: joined before the import
        "telegram,t1,Ann again,,\n"  # 4 present: row 2's member
        "Bad Channel,x1,Dan,,\n"  # 5 rejected by the reader
        f"vk,v2,Eve,,{UNKNOWN_REFERRER}\n"  # 6 rejected by the writer
        "email,,Fay,,\n"  # 7 created, no reference
        "vk,v3,Cleo,not-an-email,\n"  # 8 rejected by the reader
        "telegram,t1,Ann thrice,,\n"  # 9 present: row 2's member
        f"vk,v4,Gil,,{scout}\n"  # 10 created
        "vk,v-old,,,\n"  # 11 present
    ).encode()


def lines_of(body: str) -> list[dict[str, Any]]:
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


async def upload(client: httpx.AsyncClient, data: bytes, accept: str | None) -> httpx.Response:
    headers = {"Content-Type": CSV} | ({"Accept": accept} if accept is not None else {})
    return await client.post(f"{BASE}/import", content=pieces(data), headers=headers)


async def member_ids(client: httpx.AsyncClient) -> dict[str, str]:
    """Every member's id by external reference (by display name without one), as listed."""
    items = (await client.get(BASE, params={"limit": 100})).json()["items"]
    return {m["external_ref"] or m["display_name"]: m["id"] for m in items}


def expected_report(ids: dict[str, str]) -> list[dict[str, Any]]:
    def kept(row: int, outcome: str, key: str) -> dict[str, Any]:
        return {"row": row, "outcome": outcome, "member_id": ids[key]}

    def rejected(row: int, field: str) -> dict[str, Any]:
        return {"row": row, "outcome": "rejected", "field": field}

    return [kept(2, "created", "t1"), kept(3, "present", "v-old"), kept(4, "present", "t1"),
            rejected(5, "channel"), rejected(6, "invited_by"), kept(7, "created", "Fay"),
            rejected(8, "email"), kept(9, "present", "t1"), kept(10, "created", "v4"),
            kept(11, "present", "v-old"),
            {"summary": {"rows": 10, "created": 3, "present": 4, "rejected": 3}}]


def without_reasons(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for line in lines:
        if line.get("outcome") == "rejected":
            assert line.pop("reason"), line
    return lines


@pytest.mark.parametrize("chunk_rows", [2000, 2], ids=["one chunk", "chunks of two"])
async def test_the_per_row_report_says_each_rows_outcome_and_member_in_file_order(
    client: httpx.AsyncClient, chunk_rows: int,
) -> None:
    # Chunks of two put a duplicate's first row in another chunk, and make chunks of rejected
    # rows only.
    client._transport.app.state.importer.chunk_rows = chunk_rows  # type: ignore[attr-defined]
    old = (await client.post(BASE, json={"channel": "vk", "external_ref": "v-old"})).json()
    scout = (await client.post(BASE, json={"channel": "offline", "display_name": "Scout"})
             ).json()["id"]
    response = await upload(client, mixed_csv(scout), ROWS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ROWS
    ids = await member_ids(client)
    assert ids["v-old"] == old["id"]
    assert without_reasons(lines_of(response.text)) == expected_report(ids)
    reasons = {line["row"]: line["reason"] for line in lines_of(response.text)
               if line.get("outcome") == "rejected"}
    assert "not a member of this community" in reasons[6] and "Bad Channel" in reasons[5]

    again = lines_of((await upload(client, mixed_csv(scout), ROWS)).text)
    assert [(line["row"], line["member_id"]) for line in again
            if line.get("outcome") == "present"] == [
        (2, ids["t1"]), (3, ids["v-old"]), (4, ids["t1"]), (9, ids["t1"]), (10, ids["v4"]),
        (11, ids["v-old"])]


async def test_only_an_accept_preferring_ndjson_gets_the_per_row_report(
    client: httpx.AsyncClient,
) -> None:
    data = refs_csv(["r1"])
    summary_keys = {"rows", "created", "present", "rejected", "rejections",
                    "rejections_truncated"}
    for accept in (None, "application/json", "*/*", "text/html", "application/x-ndjson;q=0",
                   "application/json, application/x-ndjson;q=0.5", "nonsense;q=x"):
        response = await upload(client, data, accept)
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"] == "application/json", accept
        assert response.json().keys() == summary_keys, accept
    for accept in (ROWS, "application/json;q=0.9, application/x-ndjson", f"text/html, {ROWS}"):
        response = await upload(client, data, accept)
        assert response.headers["content-type"] == ROWS, accept
        assert lines_of(response.text)[0]["outcome"] == "present", accept


async def test_the_openapi_document_shows_both_answers(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    answers = schema["paths"][f"{BASE.replace('c1', '{community_id}')}/import"]["post"][
        "responses"]["200"]["content"]
    assert answers.keys() == {"application/json", ROWS}
    assert set(answers[ROWS]["schema"]["properties"]) == {
        "row", "outcome", "member_id", "field", "reason"}


WHOLE_IMPORT = 'report = asyncio.run(import_path(settings, "big", path))'
WITH_ROW_REPORT = (
    'with path.with_name("report.ndjson").open("wb") as rows_out:\n'
    '    report = asyncio.run(import_path(settings, "big", path, rows_out=rows_out.write))'
)


async def test_100k_rows_with_a_per_row_report_import_with_bounded_memory(
    settings: Settings, tmp_path: Path
) -> None:
    # The 100,000-row run of test_members_import, its report to a file as chunks are written.
    assert WHOLE_IMPORT in MEMORY_RUN
    rows, file = 100_000, tmp_path / "big.csv"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", MEMORY_RUN.replace(WHOLE_IMPORT, WITH_ROW_REPORT),
         settings.database, str(file), str(rows)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"100k import with a per-row report: {measured}")
    assert (measured["created"], measured["rejected"]) == (rows, 0)
    assert measured["growth_kib"] * 1024 < measured["file_bytes"] / 2, measured
    lines = (tmp_path / "report.ndjson").read_bytes().splitlines()
    assert len(lines) == rows + 1 and json.loads(lines[0])["outcome"] == "created"
    assert json.loads(lines[-1]) == {"summary": {"rows": rows, "created": rows, "present": 0,
                                            "rejected": 0}}


async def test_the_cli_writes_the_per_row_report_to_a_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / "members.csv"
    file.write_text("channel,external_ref\ntelegram,t1\nvk,v1\nNo Such Channel,n1\nvk,v1\n")
    report = tmp_path / "report.ndjson"
    monkeypatch.setenv("GATHERLY_DATABASE_URL", settings.database)
    command = ["import-members", "c1", str(file), "--report", str(report)]
    code = await asyncio.to_thread(gatherly, command)
    assert code == 1
    shown = capfd.readouterr()
    assert f"2 created, 1 present, 1 rejected {'━' * 10}" in shown.err, shown.err
    lines = without_reasons(lines_of(report.read_text()))
    assert [(line.get("row"), line.get("outcome"), line.get("field")) for line in lines] == [
        (2, "created", None), (3, "created", None), (4, "rejected", "channel"),
        (5, "present", None), (None, None, None)]
    assert lines[1]["member_id"] == lines[3]["member_id"] != lines[0]["member_id"]
    assert lines[-1] == {"summary": {"rows": 4, "created": 2, "present": 1, "rejected": 1}}

    unreadable = tmp_path / "bad.csv"
    unreadable.write_text("channel,phone\nvk,1\n")
    code = await asyncio.to_thread(import_members, settings, "c1", str(unreadable), str(report))
    assert code == 2 and not report.exists()


async def test_a_failed_chunk_ends_the_report_without_a_summary_and_the_api_with_a_problem(
    importer: MemberImporter, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs = [f"r{i}" for i in range(1000)]
    fail_the_chunk_of(importer, monkeypatch, "r400")  # the third chunk
    out: list[bytes] = []
    with pytest.raises(RuntimeError, match="went away"):
        await importer.run("c1", pieces(refs_csv(refs), 4096), ImportFormat.CSV,
                           rows_out=out.append)
    written = lines_of(b"".join(out).decode())
    # Only whole chunks, in file order from the first row: those written before the failure.
    assert [line["row"] for line in written] == list(range(2, 2 + len(written)))
    assert len(written) % 200 == 0 and len(written) <= 400
    assert all(line["outcome"] == "created" for line in written)

    # Through the API, those lines are no answer: a problem, as for the summary.
    served: MemberImporter = client._transport.app.state.importer  # type: ignore[attr-defined]

    async def unreachable(conn: AsyncConnection, records: list[tuple[object, ...]]) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr(served, "_copy_profiles", unreachable)
    response = await upload(client, refs_csv(["r1", "r2"]), ROWS)
    assert response.status_code in (500, 503), response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_chunk_waits_for_the_chunks_before_it_and_its_rows_come_in_file_order() -> None:
    out: list[bytes] = []
    lines = RowReportLines(out.append)
    lines.chunk_done(1, [outcome_line(9, CREATED, "m9"), rejection_line(Rejection(8, "email",
                                                                                  "bad"))])
    lines.chunk_done(2, [outcome_line(10, PRESENT, "m2")])
    assert out == []  # the first chunk is still being written
    lines.chunk_done(0, [outcome_line(4, PRESENT, "m2"), outcome_line(2, CREATED, "m2")])
    rows = [json.loads(line) for line in b"".join(out).splitlines()]
    assert [(row["row"], row["outcome"]) for row in rows] == [
        (2, "created"), (4, "present"), (8, "rejected"), (9, "created"), (10, "present")]
    assert rows[2] == {"row": 8, "outcome": "rejected", "field": "email", "reason": "bad"}
    assert rows[1] == {"row": 4, "outcome": "present", "member_id": "m2"}


def test_the_summary_line_counts_every_row() -> None:
    report = ImportReport(rows=5, created=2, present=1)
    report.reject(Rejection(3, "channel", "unknown"))
    report.reject(Rejection(4, "email", "bad"))
    assert json.loads(summary_line(report)) == {
        "summary": {"rows": 5, "created": 2, "present": 1, "rejected": 2}}
    assert summary_line(report).endswith(b"}\n")
