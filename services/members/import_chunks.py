"""The import's chunks: checked rows with what the writer sends for each, cut in file order,
and the hand-over between the reader and the writer (services/members/importer.py)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gatherly.eventstore import EventRow
from services.members.import_rows import ImportRow, Rejection


@dataclass(slots=True)
class Chunk:
    """Checked rows and, index for index, what the writer would send for each one; with a
    per-row report, also the rows the reader rejected among them."""

    rows: list[ImportRow] = field(default_factory=list)
    hashes: list[str | None] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    joined_at: list[datetime] = field(default_factory=list)
    profiles: list[tuple[Any, ...]] = field(default_factory=list)  # importer._PROFILE_COLUMNS
    events: list[EventRow] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    sequence: int = 0  # its place in the file, among the chunks

    def cut(self, size: int) -> Chunk:
        """The first `size` rows (checked or rejected) as a chunk of their own; this one keeps
        the rest."""
        n, r = _first_rows(size, self.rows, self.rejected)
        head = Chunk(self.rows[:n], self.hashes[:n], self.member_ids[:n], self.joined_at[:n],
                      self.profiles[:n], self.events[:n], self.rejected[:r])
        for part in (self.rows, self.hashes, self.member_ids, self.joined_at, self.profiles,
                     self.events):
            del part[:n]
        del self.rejected[:r]
        return head

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)


def _first_rows(size: int, rows: list[ImportRow], rejected: list[Rejection]) -> tuple[int, int]:
    """How many of the first `size` rows in file order are checked ones, how many rejected."""
    n = r = 0
    while n + r < size:
        if r < len(rejected) and (n == len(rows) or rejected[r].number < rows[n].number):
            r += 1
        else:
            n += 1
    return n, r


async def hand_over(
    queue: asyncio.Queue[Chunk | None], chunk: Chunk | None, writer: asyncio.Task[None],
) -> None:
    """Queue a chunk for the writer, unless the writer has failed: then its error, at once."""
    put = asyncio.ensure_future(queue.put(chunk))
    await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await put
        writer.result()  # raises the writer's error
