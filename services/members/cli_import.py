"""`gatherly import-members COMMUNITY FILE [--report PATH] [--channels SLUGS]`: the bulk import
from a file, with a progress bar, and optionally the per-row report (the same NDJSON as the HTTP
endpoint's) to PATH.

The CLI runs without the gateway, so nothing hands it the community's custom channels (they live
with the edge app, whose tables no service reads): `--channels` names them, and rows naming
another channel are rejected as through the API. Without it, any custom slug is taken, as on a
direct call to the service, and the CLI says so.

Loaded by string from the kernel's CLI (the kernel never imports a service). The file is read in
64 KiB pieces through the same importer the HTTP endpoint uses, so memory stays bounded; the
per-row report goes to its file as chunks are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from gatherly.db import create_engine
from gatherly.eventstore import EventStore
from gatherly.settings import Settings
from services.members.import_rows import ImportFormat, ImportReport, UnreadableImport
from services.members.importer import MemberImporter, ReportOut

PIECE = 64 * 1024
SUFFIXES = {".csv": ImportFormat.CSV, ".ndjson": ImportFormat.NDJSON,
            ".jsonl": ImportFormat.NDJSON}


async def file_pieces(path: Path, on_read: Callable[[int], None] | None = None
                      ) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            if on_read:
                on_read(len(piece))
            yield piece
            await asyncio.sleep(0)


async def import_path(
    settings: Settings, community_id: str, path: Path, *,
    on_read: Callable[[int], None] | None = None,
    on_chunk: Callable[[ImportReport], None] | None = None, rows_out: ReportOut | None = None,
    custom_channels: frozenset[str] | None = None,
) -> ImportReport:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UnreadableImport(f"{path.name}: name it .csv, .ndjson or .jsonl")
    engine = create_engine(settings.database, "members", pool_size=2)
    try:
        importer = MemberImporter(engine, EventStore(source="/gatherly/members"))
        return await importer.run(community_id, file_pieces(path, on_read), fmt, on_chunk,
                                  custom_channels=custom_channels, rows_out=rows_out)
    finally:
        await engine.dispose()


def import_members(settings: Settings, community_id: str, file: str,
                   report_path: str | None = None,
                   custom_channels: frozenset[str] | None = None) -> int:
    """What the CLI runs: 0 when every row was imported or already present, 1 with rejections,
    2 when the file cannot be read at all. With `report_path`, the per-row report is written
    there; an import that fails leaves no report file (a part would pass for the whole).
    `custom_channels`: the community's (gatherly.channels); None: any custom slug."""
    console = Console(stderr=True)
    path = Path(file)
    if not path.is_file():
        console.print(f"[red]no such file: {file}")
        return 2
    if custom_channels is None:
        console.print("[yellow]--channels not given: any custom channel slug is taken; name the"
                      " community's custom channels to hold rows to them")
    if report_path is None:
        return _import_with_progress(settings, community_id, path, console, None,
                                     custom_channels)
    target = Path(report_path)
    try:
        with target.open("wb") as rows_out:
            code = _import_with_progress(settings, community_id, path, console, rows_out.write,
                                         custom_channels)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if code == 2:
        target.unlink(missing_ok=True)
    return code


def _import_with_progress(
    settings: Settings, community_id: str, path: Path, console: Console,
    rows_out: ReportOut | None, custom_channels: frozenset[str] | None,
) -> int:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)

        def counted(report: ImportReport) -> None:
            progress.update(task, description=(
                f"{report.created} created, {report.present} present,"
                f" {report.rejected} rejected"))

        try:
            report = asyncio.run(import_path(
                settings, community_id, path,
                on_read=lambda n: progress.advance(task, n), on_chunk=counted,
                rows_out=rows_out, custom_channels=custom_channels))
        except UnreadableImport as error:
            console.print(f"[red]{error}")
            return 2
    print(f"rows {report.rows}: created {report.created}, already present {report.present},"
          f" rejected {report.rejected}")
    for rejection in report.rejections:
        print(f"  row {rejection.number}: {rejection.field}: {rejection.reason}")
    if report.rejected > len(report.rejections):
        print(f"  … and {report.rejected - len(report.rejections)} more rejected rows")
    return 1 if report.rejected else 0
