"""Bulk import: rows from a stream, written a chunk per transaction with set-based statements.

Idempotent by external reference: the list's unique (community, channel, reference hash) index
decides, inside `INSERT … ON CONFLICT DO NOTHING`, which rows are new, and only those get a
`gatherly.member.joined` event and a profile. A failed chunk rolls back alone; the chunks before
it stay (and the one written beside it, if that one commits), and re-sending the same file
completes the import without duplicates.

Reading and writing overlap: while one chunk is in Postgres, the next is parsed, checked and
prepared as if every row were new (ids, reference hashes, the events checked against their
contract and encoded, the profile records), so that a writer's turn is only the statements and
the choice of which prepared rows go in: the list insert that says which rows are new, their
events and their profiles by COPY. Two chunks are written at once, on two connections (see
`_write_all`), and at most one more waits, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.db import driver_in_transaction
from gatherly.envelope import new_event_ids, utc_now
from gatherly.eventstore import EventRow, EventStore
from gatherly.telemetry import current_traceparent
from services.members import domain, personal, views
from services.members.import_rows import (
    ImportFormat,
    ImportReport,
    ImportRow,
    RawRow,
    Rejection,
    RowReader,
    check_row,
)

CHUNK_ROWS = 2000
QUEUED_CHUNKS = 1  # prepared chunks waiting for a writer, besides those being written
WRITERS = 2  # chunks in flight at once, each on its own connection

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


Progress = Callable[[ImportReport], None]


@dataclass(slots=True)
class _Chunk:
    """Checked rows and, index for index, what the writer would send for each one."""

    rows: list[ImportRow] = field(default_factory=list)
    hashes: list[str | None] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    joined_at: list[datetime] = field(default_factory=list)
    profiles: list[tuple[Any, ...]] = field(default_factory=list)  # `_PROFILE_COLUMNS`
    events: list[EventRow] = field(default_factory=list)

    def cut(self, size: int) -> _Chunk:
        """The first `size` rows as a chunk of their own; this one keeps the rest."""
        head = _Chunk(self.rows[:size], self.hashes[:size], self.member_ids[:size],
                      self.joined_at[:size], self.profiles[:size], self.events[:size])
        for part in (self.rows, self.hashes, self.member_ids, self.joined_at, self.profiles,
                     self.events):
            del part[:size]
        return head


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
        if self._key is None:
            async with self.engine.connect() as conn:
                self._key = await views.ref_key(conn)
        queue: asyncio.Queue[_Chunk | None] = asyncio.Queue(QUEUED_CHUNKS)
        writer = asyncio.create_task(self._write_all(community_id, queue, report, progress))
        try:
            async for chunk in self._chunks(community_id, body, fmt, report, custom_channels):
                await _hand_over(queue, chunk, writer)
        finally:
            # Also when the body turns out unreadable: the chunks handed over are written
            # (as they were before reading overlapped writing), then the error goes up.
            if not writer.done():
                await _hand_over(queue, None, writer)
            await writer
        return report

    async def _chunks(
        self, community_id: str, body: AsyncIterable[bytes], fmt: ImportFormat,
        report: ImportReport, custom: frozenset[str] | None,
    ) -> AsyncIterator[_Chunk]:
        reader = RowReader(fmt)
        chunk = _Chunk()
        async for data in body:
            self._prepare(community_id, self._check(reader.feed(data), report, custom), chunk)
            while len(chunk.rows) >= self.chunk_rows:
                yield chunk.cut(self.chunk_rows)
        self._prepare(community_id, self._check(reader.feed(b"", final=True), report, custom),
                      chunk)
        if chunk.rows:
            yield chunk

    async def _write_all(
        self, community_id: str, queue: asyncio.Queue[_Chunk | None],
        report: ImportReport, progress: Progress | None,
    ) -> None:
        """Up to `WRITERS` chunks in flight, each in a transaction of its own, so that Postgres
        works on one chunk while this process sends the next. Their list inserts still run one
        after the other in the file's order (each starts once the one before has run, not
        committed): members are listed in the file's order, and only a later chunk ever waits
        for an earlier one (the same reference in both: the later insert waits for the earlier
        commit, then finds it present), never the other way round, so they cannot deadlock."""
        flying: set[asyncio.Task[None]] = set()
        listed = asyncio.Event()
        listed.set()  # the list insert before the next chunk's has run
        try:
            while (chunk := await _next_chunk(queue, flying)) is not None:
                while len(flying) >= WRITERS:
                    await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
                    _reap(flying)
                after, listed = listed, asyncio.Event()
                flying.add(asyncio.create_task(self._write(
                    community_id, chunk, report, progress, after=after, listed=listed)))
        finally:
            # A chunk in flight finishes (commits or rolls back) before an error goes up: its
            # transaction is never cut off half way.
            results = await asyncio.gather(*flying, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

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

    def _prepare(self, community_id: str, rows: list[ImportRow], chunk: _Chunk) -> None:
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
                                   row.external_ref))
        chunk.events.extend(self.store.prepare_decided(
            decided, community_id=community_id, traceparent=current_traceparent()))

    async def _write(
        self, community_id: str, chunk: _Chunk, report: ImportReport,
        progress: Progress | None, *, after: asyncio.Event, listed: asyncio.Event,
    ) -> None:
        """One chunk in one transaction; its list insert once `after` is set (the previous
        chunk's has run), then `listed` set for the next chunk, also if this one fails."""
        rejections: list[Rejection] = []
        async with self.engine.begin() as conn:
            try:
                await after.wait()
                wanted = await self._wanted(conn, community_id, chunk, rejections)
                created = await self._insert_list(conn, community_id, chunk, wanted)
            finally:
                listed.set()
            new = [i for i in wanted if chunk.member_ids[i] in created]
            await self.store.append_prepared(conn, [chunk.events[i] for i in new])
            await self._copy_profiles(conn, [chunk.profiles[i] for i in new])
        for rejection in rejections:
            report.reject(rejection)
        report.created += len(new)
        report.present += len(chunk.rows) - len(rejections) - len(new)
        if progress:
            progress(report)

    async def _wanted(
        self, conn: AsyncConnection, community_id: str, chunk: _Chunk,
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
        """COPY on the chunk's transaction (the list insert before it has opened it)."""
        if records:
            driver = await driver_in_transaction(conn)
            await driver.copy_records_to_table("member_profile", records=records,
                                               columns=_PROFILE_COLUMNS)

    async def _insert_list(
        self, conn: AsyncConnection, community_id: str, chunk: _Chunk, wanted: list[int]
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


def _json(handles: Mapping[str, str]) -> str:
    """The handles as the jsonb COPY sends: pydantic-core's encoder (a tenth of the reader's
    CPU went to `json.dumps` here), and no encoding at all for none, the common case."""
    return to_json(dict(handles)).decode() if handles else "{}"


async def _next_chunk(
    queue: asyncio.Queue[_Chunk | None], flying: set[asyncio.Task[None]]
) -> _Chunk | None:
    """The reader's next chunk; a chunk in flight that fails meanwhile ends the wait with its
    error, so the import stops at once."""
    get = asyncio.ensure_future(queue.get())
    try:
        while not get.done():
            await asyncio.wait({get, *flying}, return_when=asyncio.FIRST_COMPLETED)
            _reap(flying)
    finally:
        get.cancel()  # nothing, once done
    return get.result()


def _reap(flying: set[asyncio.Task[None]]) -> None:
    """Forget the chunks written; raise the error of one that failed."""
    for task in [task for task in flying if task.done()]:
        flying.discard(task)
        task.result()


async def _hand_over(
    queue: asyncio.Queue[_Chunk | None], chunk: _Chunk | None, writer: asyncio.Task[None],
) -> None:
    """Queue a chunk for the writer, unless the writer has failed: then its error, at once."""
    put = asyncio.ensure_future(queue.put(chunk))
    await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await put
        writer.result()  # raises the writer's error
