"""Bulk import: rows from a stream, written in chunks with set-based statements, all of them in
ONE transaction that commits only once the whole body has been read.

All or nothing (DESIGN §4.6, issue #3): an upload found unreadable near its end (a byte that is
not UTF-8, an unclosed quote) or a chunk that fails to be written rolls the whole import back, so
a 4xx or 5xx answer means nothing was written and re-sending the fixed file cannot double a row.
A row-level problem is not that: the row is rejected in the report and the others go in.

The price of one transaction: events committed by others while an import runs reach the stream
only once it commits (a relay reads below the oldest open transaction of the Postgres server, so
every service's relay whose database is on it waits), and two imports of one community run one
after the other (`_ONE_IMPORT_AT_A_TIME`: their rows would otherwise wait on each other's
uncommitted references, and in opposite orders deadlock).

Idempotent by external reference: the list's unique (community, channel, reference hash) index
decides, inside `INSERT … ON CONFLICT DO NOTHING`, which rows are new, and only those get a
`gatherly.member.joined` event and a profile.

Reading and writing overlap: while one chunk is in Postgres, the next is parsed, checked and
prepared as if every row were new (ids, reference hashes, the events checked against their
contract and encoded, the profile records), so that the writer's turn is only the statements and
the choice of which prepared rows go in: the list insert that says which rows are new, their
events and their profiles by COPY. One chunk is written at a time (one transaction is one
connection), at most one more waits, so memory in this process stays bounded; Postgres holds the
rest.

With a per-row report asked for (`rows_out`), a chunk also carries the rows the reader rejected,
and once written says every row's outcome: created, present with the member found (the existing
ids in one join after the list insert), or rejected; `RowReportLines` puts them in file order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

from pydantic_core import to_json
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.db import driver_in_transaction
from gatherly.envelope import new_event_ids, utc_now
from gatherly.eventstore import EventStore
from gatherly.telemetry import current_traceparent
from services.members import domain, personal, views
from services.members.import_chunks import Chunk, hand_over
from services.members.import_rows import (
    CREATED,
    PRESENT,
    ImportFormat,
    ImportReport,
    ImportRow,
    RawRow,
    Rejection,
    RowReader,
    RowReportLines,
    check_row,
    outcome_line,
    rejection_line,
    summary_line,
)

CHUNK_ROWS = 2000
QUEUED_CHUNKS = 1  # prepared chunks waiting for the writer, besides the one being written

# A transaction-level advisory lock per community (the two-key form, apart from the relay's
# one-key locks); 0x494d5054 is "IMPT".
_ONE_IMPORT_AT_A_TIME = text("SELECT pg_advisory_xact_lock(1229803604, hashtext(:c))")

_INSERT_LIST = text(
    "INSERT INTO member_list (id, community_id, channel, status, invited_by, external_ref_hash,"
    " joined_at, version)"
    " SELECT id, :c, channel, 'active', invited_by, ref_hash, joined_at, 1 FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:channels AS text[]), CAST(:invited AS uuid[]),"
    " CAST(:hashes AS text[]), CAST(:times AS timestamptz[]))"
    " AS r(id, channel, invited_by, ref_hash, joined_at)"
    " ON CONFLICT (community_id, channel, external_ref_hash)"
    " WHERE external_ref_hash IS NOT NULL DO NOTHING RETURNING id::text"
)
# A separate statement after the insert, so that its snapshot sees a row the insert waited for.
_EXISTING = text(
    "SELECT r.ref_hash, l.id::text FROM unnest(CAST(:channels AS text[]),"
    " CAST(:hashes AS text[])) AS r(channel, ref_hash) JOIN member_list l"
    " ON l.community_id = :c AND l.channel = r.channel AND l.external_ref_hash = r.ref_hash"
)
_PROFILE_COLUMNS = ["member_id", "community_id", "display_name", "email", "handles", "city",
                    "interests", "name_key", "email_key", "external_ref"]


Progress = Callable[[ImportReport], None]
ReportOut = Callable[[bytes], object]


class MemberImporter:
    def __init__(self, engine: AsyncEngine, store: EventStore, chunk_rows: int = CHUNK_ROWS):
        self.engine = engine
        self.store = store
        self.chunk_rows = chunk_rows
        self._key: str | None = None  # the reference-hash key: made once per deployment

    async def run(
        self, community_id: str, body: AsyncIterable[bytes], fmt: ImportFormat,
        progress: Progress | None = None, *, custom_channels: frozenset[str] | None = None,
        rows_out: ReportOut | None = None,
    ) -> ImportReport:
        """`custom_channels`: the community's own channels when the gateway says (see
        `gatherly.channels`); rows naming another channel are rejected. `rows_out`: given,
        it gets the per-row report (NDJSON, file order, the summary last) as chunks are written,
        before the commit; when the import fails, it has had the lines of some chunks written
        (rolled back since) and no summary."""
        report = ImportReport()
        lines = RowReportLines(rows_out) if rows_out else None
        if self._key is None:
            async with self.engine.connect() as conn:
                self._key = await views.ref_key(conn)
        async with self.engine.begin() as conn:
            await conn.execute(_ONE_IMPORT_AT_A_TIME, {"c": community_id})
            queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUED_CHUNKS)
            writer = asyncio.create_task(
                self._write_all(conn, community_id, queue, report, progress, lines))
            try:
                async for chunk in self._chunks(community_id, body, fmt, report,
                                                custom_channels, per_row=lines is not None):
                    await hand_over(queue, chunk, writer)
            except BaseException:
                _drop_waiting(queue)  # the body is unreadable: the rest would be rolled back
                raise
            finally:
                # The chunk being written ends before the transaction does (commit, or
                # rollback on the error going up): a statement is never cut off half way.
                if not writer.done():
                    await hand_over(queue, None, writer)
                await writer
        if rows_out:
            rows_out(summary_line(report))
        return report

    async def _chunks(
        self, community_id: str, body: AsyncIterable[bytes], fmt: ImportFormat,
        report: ImportReport, custom: frozenset[str] | None, *, per_row: bool,
    ) -> AsyncIterator[Chunk]:
        reader = RowReader(fmt)
        chunk = Chunk()
        kept = chunk.rejected if per_row else None  # (cut keeps the list, emptied in place)
        async for data in body:
            self._prepare(community_id, self._check(reader.feed(data), report, custom, kept),
                          chunk)
            while len(chunk) >= self.chunk_rows:
                yield chunk.cut(self.chunk_rows)
        self._prepare(community_id,
                      self._check(reader.feed(b"", final=True), report, custom, kept), chunk)
        if len(chunk):
            yield chunk

    async def _write_all(
        self, conn: AsyncConnection, community_id: str, queue: asyncio.Queue[Chunk | None],
        report: ImportReport, progress: Progress | None, lines: RowReportLines | None,
    ) -> None:
        """The chunks in file order, one after the other on the import's transaction, while
        the reader prepares the next; members are listed in the file's order."""
        sequence = 0
        while (chunk := await queue.get()) is not None:
            chunk.sequence, sequence = sequence, sequence + 1
            await self._write(conn, community_id, chunk, report, progress, lines)

    def _check(
        self, raw_rows: list[RawRow], report: ImportReport, custom: frozenset[str] | None,
        kept: list[Rejection] | None,
    ) -> list[ImportRow]:
        rows: list[ImportRow] = []
        for number, raw in raw_rows:
            report.rows += 1
            checked = raw if isinstance(raw, Rejection) else check_row(number, raw, custom)
            if isinstance(checked, Rejection):
                report.reject(checked)
                if kept is not None:
                    kept.append(checked)
            else:
                rows.append(checked)
        return rows

    def _prepare(self, community_id: str, rows: list[ImportRow], chunk: Chunk) -> None:
        """Everything the writer may send for `rows`, made before its turn, as if every row
        were new; the writer leaves out those that are not."""
        assert self._key is not None
        now = utc_now()
        member_ids = new_event_ids(len(rows))
        decided = []
        for row, member_id in zip(rows, member_ids, strict=True):
            ref_hash = (personal.ref_hash(self._key, community_id, row.channel, row.external_ref)
                        if row.external_ref else None)
            joined_at = row.joined_at or now
            [event] = domain.join(member_id, channel=row.channel, joined_at=joined_at,
                                  invited_by=row.invited_by, external_ref=ref_hash)
            decided.append((member_id, 1, event))
            p = row.profile
            chunk.rows.append(row)
            chunk.hashes.append(ref_hash)
            chunk.member_ids.append(member_id)
            chunk.joined_at.append(joined_at)
            chunk.profiles.append((member_id, community_id, p.display_name, p.email,
                                   _json(p.handles), p.city, list(p.interests),
                                   personal.search_key(p.display_name),
                                   personal.search_key(p.email), row.external_ref))
        chunk.events.extend(self.store.prepare_decided(
            decided, community_id=community_id, traceparent=current_traceparent()))

    async def _write(
        self, conn: AsyncConnection, community_id: str, chunk: Chunk, report: ImportReport,
        progress: Progress | None, lines: RowReportLines | None,
    ) -> None:
        """One chunk's statements, on the import's transaction."""
        rejections: list[Rejection] = []
        wanted = await self._wanted(conn, community_id, chunk, rejections)
        created = await self._insert_list(conn, community_id, chunk, wanted)
        new = [i for i in wanted if chunk.member_ids[i] in created]
        await self.store.append_prepared(conn, [chunk.events[i] for i in new])
        await self._copy_profiles(conn, [chunk.profiles[i] for i in new])
        if lines:
            lines.chunk_done(chunk.sequence,
                             await self._outcomes(conn, community_id, chunk, rejections, new))
        for rejection in rejections:
            report.reject(rejection)
        report.created += len(new)
        report.present += len(chunk.rows) - len(rejections) - len(new)
        if progress:
            progress(report)

    async def _wanted(
        self, conn: AsyncConnection, community_id: str, chunk: Chunk,
        rejections: list[Rejection],
    ) -> list[int]:
        """The rows to insert: not those with an unknown referrer (rejected), nor a reference
        a row before them in the chunk has (the same person twice: counted as present)."""
        referrers = await self._known_referrers(conn, community_id, chunk.rows)
        wanted: list[int] = []
        seen: set[tuple[str, str]] = set()
        for i, row in enumerate(chunk.rows):
            if row.invited_by and row.invited_by not in referrers:
                rejections.append(Rejection(row.number, "invited_by",
                                            "the referrer is not a member of this community"))
                continue
            ref = chunk.hashes[i]
            if ref and (row.channel, ref) in seen:
                continue
            if ref:
                seen.add((row.channel, ref))
            wanted.append(i)
        return wanted

    async def _outcomes(
        self, conn: AsyncConnection, community_id: str, chunk: Chunk,
        rejections: list[Rejection], new: list[int],
    ) -> list[tuple[int, bytes]]:
        """Every row's report line. A row neither new nor rejected is present: the member its
        reference names, created earlier in this chunk or found by one join."""
        ids: dict[str | None, str] = {chunk.hashes[i]: chunk.member_ids[i] for i in new}
        created, rejected = set(new), {r.number for r in rejections}
        present = [i for i, row in enumerate(chunk.rows)
                   if i not in created and row.number not in rejected]
        missing = {chunk.hashes[i]: chunk.rows[i].channel for i in present
                   if chunk.hashes[i] not in ids}  # (a reference repeated is looked up once)
        if missing:
            result = await conn.execute(_EXISTING, {
                "c": community_id, "channels": list(missing.values()), "hashes": list(missing)})
            ids.update((ref_hash, member_id) for ref_hash, member_id in result)
        return [*(rejection_line(r) for r in (*chunk.rejected, *rejections)),
                *(outcome_line(chunk.rows[i].number, CREATED, chunk.member_ids[i]) for i in new),
                *(outcome_line(chunk.rows[i].number, PRESENT, ids.get(chunk.hashes[i]))
                  for i in present)]

    async def _known_referrers(
        self, conn: AsyncConnection, community_id: str, rows: list[ImportRow]
    ) -> set[str]:
        wanted = sorted({row.invited_by for row in rows if row.invited_by})
        if not wanted:
            return set()
        result = await conn.execute(
            text("SELECT id::text FROM member_list WHERE community_id = :c"
                 " AND id = ANY(CAST(:ids AS uuid[])) AND status <> 'erased'"),
            {"c": community_id, "ids": wanted},
        )
        return set(result.scalars())

    async def _copy_profiles(self, conn: AsyncConnection, records: list[tuple[Any, ...]]
                             ) -> None:
        """COPY on the import's transaction (the lock taken first has opened it)."""
        if records:
            driver = await driver_in_transaction(conn)
            await driver.copy_records_to_table("member_profile", records=records,
                                               columns=_PROFILE_COLUMNS)

    async def _insert_list(
        self, conn: AsyncConnection, community_id: str, chunk: Chunk, wanted: list[int]
    ) -> set[str]:
        if not wanted:
            return set()
        result = await conn.execute(_INSERT_LIST, {
            "c": community_id,
            "ids": [chunk.member_ids[i] for i in wanted],
            "channels": [chunk.rows[i].channel for i in wanted],
            "invited": [chunk.rows[i].invited_by for i in wanted],
            "hashes": [chunk.hashes[i] for i in wanted],
            "times": [chunk.joined_at[i] for i in wanted],
        })
        return set(result.scalars())


def _drop_waiting(queue: asyncio.Queue[Chunk | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


def _json(handles: Mapping[str, str]) -> str:
    """The handles as the jsonb COPY sends: pydantic-core's encoder (a tenth of the reader's
    CPU went to `json.dumps` here), and no encoding at all for none, the common case."""
    return to_json(dict(handles)).decode() if handles else "{}"
