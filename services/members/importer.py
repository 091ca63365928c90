"""Bulk import: rows from a stream, written a chunk per transaction with set-based statements.

Idempotent by external reference: the list's unique (community, channel, reference hash) index
decides, inside `INSERT … ON CONFLICT DO NOTHING`, which rows are new, and only those get a
`gatherly.member.joined` event and a profile. A failed chunk rolls back alone; the chunks before
it stay, and re-sending the same file completes the import without duplicates.

Reading and writing overlap: while one chunk's transaction is in Postgres, the next chunk is
parsed and checked (at most two chunks wait, so memory stays bounded). Per chunk: one insert
into the list that says which rows are new, the events by COPY (`EventStore.append_envelopes`),
the profiles by COPY.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.db import driver_in_transaction
from gatherly.envelope import Envelope, utc_now
from gatherly.eventstore import EventStore, new_event_ids
from gatherly.telemetry import current_traceparent
from services.members import domain, personal, views
from services.members.import_rows import (
    ImportFormat,
    ImportRow,
    RawRow,
    Rejection,
    RowReader,
    check_row,
)

CHUNK_ROWS = 2000
QUEUED_CHUNKS = 1  # checked chunks waiting for the writer, besides the one it writes
MAX_LISTED_REJECTIONS = 1000

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
_PROFILE_COLUMNS = ["member_id", "community_id", "display_name", "email", "handles", "city",
                    "interests", "external_ref"]


@dataclass(slots=True)
class ImportReport:
    """Counts for every row, and the rejected rows with why (the first thousand listed)."""

    rows: int = 0
    created: int = 0
    present: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_LISTED_REJECTIONS:
            self.rejections.append(rejection)


Progress = Callable[[ImportReport], None]


@dataclass(frozen=True, slots=True)
class _Candidate:
    row: ImportRow
    member_id: str
    ref_hash: str | None
    joined_at: datetime


class MemberImporter:
    def __init__(self, engine: AsyncEngine, store: EventStore, chunk_rows: int = CHUNK_ROWS):
        self.engine = engine
        self.store = store
        self.chunk_rows = chunk_rows
        self._key: str | None = None  # the reference-hash key: made once per deployment

    async def run(
        self, community_id: str, body: AsyncIterable[bytes], fmt: ImportFormat,
        progress: Progress | None = None, *, custom_channels: frozenset[str] | None = None,
    ) -> ImportReport:
        """`custom_channels`: the community's own channels when the gateway says (see
        `domain.valid_channel`); rows naming another channel are rejected."""
        report = ImportReport()
        queue: asyncio.Queue[list[ImportRow] | None] = asyncio.Queue(QUEUED_CHUNKS)
        writer = asyncio.create_task(self._write_all(community_id, queue, report, progress))
        try:
            async for chunk in self._chunks(body, fmt, report, custom_channels):
                await _hand_over(queue, chunk, writer)
        finally:
            # Also when the body turns out unreadable: the chunks handed over are written
            # (as they were before reading overlapped writing), then the error goes up.
            if not writer.done():
                await _hand_over(queue, None, writer)
            await writer
        return report

    async def _chunks(
        self, body: AsyncIterable[bytes], fmt: ImportFormat, report: ImportReport,
        custom: frozenset[str] | None,
    ) -> AsyncIterator[list[ImportRow]]:
        reader = RowReader(fmt)
        chunk: list[ImportRow] = []
        async for data in body:
            chunk.extend(self._check(reader.feed(data), report, custom))
            while len(chunk) >= self.chunk_rows:
                yield chunk[: self.chunk_rows]
                del chunk[: self.chunk_rows]
        chunk.extend(self._check(reader.feed(b"", final=True), report, custom))
        if chunk:
            yield chunk

    async def _write_all(
        self, community_id: str, queue: asyncio.Queue[list[ImportRow] | None],
        report: ImportReport, progress: Progress | None,
    ) -> None:
        while (chunk := await queue.get()) is not None:
            await self._write(community_id, chunk, report)
            if progress:
                progress(report)

    def _check(
        self, raw_rows: list[RawRow], report: ImportReport, custom: frozenset[str] | None
    ) -> list[ImportRow]:
        rows: list[ImportRow] = []
        for number, raw in raw_rows:
            report.rows += 1
            checked = raw if isinstance(raw, Rejection) else check_row(number, raw, custom)
            if isinstance(checked, Rejection):
                report.reject(checked)
            else:
                rows.append(checked)
        return rows

    async def _write(self, community_id: str, rows: list[ImportRow], report: ImportReport) -> None:
        now = utc_now()
        async with self.engine.begin() as conn:
            key = self._key or await views.ref_key(conn)
            self._key = key
            referrers = await self._known_referrers(conn, community_id, rows)
            candidates: list[_Candidate] = []
            seen: set[tuple[str, str]] = set()
            member_ids = iter(new_event_ids(len(rows)))
            for row in rows:
                if row.invited_by and row.invited_by not in referrers:
                    report.reject(Rejection(row.number, "invited_by",
                                            "the referrer is not a member of this community"))
                    continue
                ref_hash = (personal.ref_hash(key, community_id, row.channel, row.external_ref)
                            if row.external_ref else None)
                if ref_hash and (row.channel, ref_hash) in seen:
                    report.present += 1  # the same person twice in one chunk
                    continue
                if ref_hash:
                    seen.add((row.channel, ref_hash))
                candidates.append(_Candidate(row, next(member_ids), ref_hash,
                                             row.joined_at or now))
            created = await self._insert_list(conn, community_id, candidates)
            new = [c for c in candidates if c.member_id in created]
            report.present += len(candidates) - len(new)
            await self.store.append_envelopes(conn, self._joined(community_id, new))
            await self._insert_profiles(conn, community_id, new)
        report.created += len(new)

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

    async def _insert_list(
        self, conn: AsyncConnection, community_id: str, candidates: list[_Candidate]
    ) -> set[str]:
        if not candidates:
            return set()
        result = await conn.execute(_INSERT_LIST, {
            "c": community_id,
            "ids": [c.member_id for c in candidates],
            "channels": [c.row.channel for c in candidates],
            "invited": [c.row.invited_by for c in candidates],
            "hashes": [c.ref_hash for c in candidates],
            "times": [c.joined_at for c in candidates],
        })
        return set(result.scalars())

    def _joined(self, community_id: str, new: list[_Candidate]) -> list[Envelope]:
        traceparent = current_traceparent()
        envelopes = []
        for c, event_id in zip(new, new_event_ids(len(new)), strict=True):
            [event] = domain.join(c.member_id, channel=c.row.channel, joined_at=c.joined_at,
                                  invited_by=c.row.invited_by, external_ref=c.ref_hash)
            envelopes.append(self.store.envelope(
                event, stream_id=c.member_id, community_id=community_id, version=1,
                traceparent=traceparent, event_id=event_id,
            ))
        return envelopes

    async def _insert_profiles(
        self, conn: AsyncConnection, community_id: str, new: list[_Candidate]
    ) -> None:
        """COPY on the chunk's transaction (the list insert before it has opened it)."""
        if not new:
            return
        driver = await driver_in_transaction(conn)
        records = [
            (c.member_id, community_id, p.display_name, p.email, json.dumps(dict(p.handles)),
             p.city, list(p.interests), c.row.external_ref)
            for c in new for p in (c.row.profile,)
        ]
        await driver.copy_records_to_table("member_profile", records=records,
                                           columns=_PROFILE_COLUMNS)


async def _hand_over(
    queue: asyncio.Queue[list[ImportRow] | None], chunk: list[ImportRow] | None,
    writer: asyncio.Task[None],
) -> None:
    """Queue a chunk for the writer, unless the writer has failed: then its error, at once."""
    put = asyncio.ensure_future(queue.put(chunk))
    await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await put
        writer.result()  # raises the writer's error
