"""Bulk import input and per-row report, pure: CSV or NDJSON bytes in, checked rows out,
incrementally; each row's outcome out as one NDJSON line, in file order.

`RowReader.feed` takes the body chunk by chunk and returns only the rows that chunk completed, so
an upload is never held whole. A CSV record may span lines inside quotes: a record is complete
when its count of `"` is even (RFC 4180 escapes a quote by doubling it, which keeps parity).
"""

from __future__ import annotations

import codecs
import csv
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic_core import to_json

from gatherly.channels import known_channel
from gatherly.envelope import in_the_future, utc_now
from gatherly.web import storable
from services.members import personal
from services.members.personal import Profile, ProfileError

COLUMNS = (
    "channel", "external_ref", "joined_at", "invited_by", "display_name", "email", "city",
    "interests", "handles",
)
_COLUMN_SET = frozenset(COLUMNS)
_LIST_COLUMNS = frozenset({"interests", "handles"})
_PROFILE_FIELDS = frozenset(personal.PROFILE_FIELDS)
MAX_LINE = 100_000
MAX_LISTED_REJECTIONS = 1000


class ImportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


class UnreadableImport(ValueError):
    """The upload as a whole cannot be read (bad header, a line too long): nothing is written."""


@dataclass(frozen=True, slots=True)
class ImportRow:
    number: int
    channel: str
    joined_at: datetime | None
    external_ref: str | None
    invited_by: str | None
    profile: Profile


@dataclass(frozen=True, slots=True)
class Rejection:
    number: int
    field: str
    reason: str


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


RawRow = tuple[int, dict[str, Any] | Rejection]

CREATED, PRESENT, REJECTED = "created", "present", "rejected"


def outcome_line(number: int, outcome: str, member_id: str | None) -> tuple[int, bytes]:
    """A created or present row's report line (`member_id`: the member the row is now)."""
    return number, to_json({"row": number, "outcome": outcome, "member_id": member_id}) + b"\n"


def rejection_line(rejection: Rejection) -> tuple[int, bytes]:
    return rejection.number, to_json({"row": rejection.number, "outcome": REJECTED,
                                      "field": rejection.field,
                                      "reason": rejection.reason}) + b"\n"


def summary_line(report: ImportReport) -> bytes:
    return to_json({"summary": {"rows": report.rows, "created": report.created,
                                "present": report.present,
                                "rejected": report.rejected}}) + b"\n"


class RowReportLines:
    """The per-row report's lines to `out`, in file order: a chunk's lines (in any order) are
    sorted, and wait until those of every chunk before it are out. The importer writes its
    chunks one after the other, so none waits there; the order is kept here, not assumed."""

    def __init__(self, out: Callable[[bytes], object]) -> None:
        self._out = out
        self._next = 0
        self._waiting: dict[int, bytes] = {}

    def chunk_done(self, sequence: int, lines: list[tuple[int, bytes]]) -> None:
        """`lines`: the chunk's (row number, line) pairs, in any order."""
        lines.sort(key=lambda numbered: numbered[0])
        self._waiting[sequence] = b"".join(line for _, line in lines)
        while self._next in self._waiting:
            self._out(self._waiting.pop(self._next))
            self._next += 1


class RowReader:
    """Turns body chunks into raw rows (a dict per record, or the reason it is unreadable)."""

    def __init__(self, fmt: ImportFormat) -> None:
        self.format = fmt
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
        self._pending = ""
        self._record: list[str] = []
        self._quotes = 0
        self._header: list[str] | None = None
        self._line = 0

    def feed(self, data: bytes, *, final: bool = False) -> list[RawRow]:
        try:
            text = self._decoder.decode(data, final=final)
        except UnicodeDecodeError as error:
            # The lines counted so far end before this piece: the bad byte's line also counts
            # the piece's newlines before it (a newline byte is never part of a UTF-8 sequence).
            bad = self._line + 1 + error.object[:error.start].count(b"\n")
            raise UnreadableImport(f"the body is not UTF-8 on line {bad}") from error
        lines = (self._pending + text).split("\n")
        self._pending = "" if final else lines.pop()
        if len(self._pending) > MAX_LINE:
            raise UnreadableImport(f"line {self._line + 1} is longer than {MAX_LINE} characters")
        rows: list[RawRow] = []
        for line in lines:
            self._line += 1
            row = self._csv_line(line) if self.format is ImportFormat.CSV else self._json(line)
            if row is not None:
                rows.append(row)
        if final and self._record:
            raise UnreadableImport(f"an unclosed quote in the record ending at line {self._line}")
        return rows

    def _json(self, line: str) -> RawRow | None:
        if not line.strip():
            return None
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            return self._line, Rejection(self._line, "row", f"not JSON: {error.msg}")
        if not isinstance(value, dict):
            return self._line, Rejection(self._line, "row", "each line must be a JSON object")
        return self._line, value

    def _csv_line(self, line: str) -> RawRow | None:
        self._record.append(line.removesuffix("\r"))
        self._quotes += line.count('"')
        if self._quotes % 2:
            return None  # inside a quoted field: the record goes on
        record, self._record, self._quotes = "\n".join(self._record), [], 0
        if not record.strip():
            return None
        values = next(csv.reader([record]))
        if self._header is None:
            self._header = [name.strip().lower() for name in values]
            unknown = sorted(set(self._header) - _COLUMN_SET)
            if unknown or "channel" not in self._header:
                raise UnreadableImport(
                    f"header: unknown column(s) {unknown}" if unknown
                    else "header: the channel column is required"
                )
            # Which of two cells named alike is meant cannot be told: the last one had won.
            if twice := sorted({name for name in self._header if self._header.count(name) > 1}):
                raise UnreadableImport(f"header: column(s) named twice {twice}")
            return None
        if len(values) != len(self._header):
            return self._line, Rejection(
                self._line, "row", f"{len(values)} values for {len(self._header)} columns"
            )
        # CSV cells are text, empty is none; only the list columns are parsed further.
        row: dict[str, Any] = {k: v.strip() or None
                               for k, v in zip(self._header, values, strict=True)}
        for column in _LIST_COLUMNS.intersection(row):
            if row[column] is not None:
                row[column] = _list_cell(column, row[column])
        return self._line, row


def _list_cell(column: str, value: str) -> list[str] | dict[str, str]:
    """A list column's cell (stripped, not empty): interests are `a;b`, handles
    `telegram:@ann;vk:ann`."""
    if column == "interests":
        return [tag for tag in value.split(";") if tag.strip()]
    pairs = [pair.split(":", 1) for pair in value.split(";") if pair.strip()]
    return {channel.strip(): handle for channel, handle in
            (pair if len(pair) == 2 else (pair[0], "") for pair in pairs)}


def check_row(
    number: int, raw: dict[str, Any], custom_channels: frozenset[str] | None = None
) -> ImportRow | Rejection:
    """One raw row against the same rules as a single join (`custom_channels` as there)."""
    if not raw.keys() <= _COLUMN_SET:  # (every row is checked: the set is made once)
        return Rejection(number, sorted(raw.keys() - _COLUMN_SET)[0], "not a column")
    channel = raw.get("channel")
    if not isinstance(channel, str) or not known_channel(channel, custom_channels):
        return Rejection(number, "channel", f"unknown channel {channel!r}")
    ref = raw.get("external_ref")
    if ref is not None and (not isinstance(ref, str | int) or not 0 < len(str(ref)) <= 200):
        return Rejection(number, "external_ref", "a string of 1 to 200 characters")
    try:
        joined_at = _time(raw.get("joined_at"))
    except (ValueError, TypeError) as error:
        return Rejection(number, "joined_at", f"not an ISO 8601 time with offset: {error}")
    if joined_at is not None and in_the_future(joined_at, utc_now()):
        return Rejection(number, "joined_at", "in the future: a join is a fact")
    try:
        invited_by = str(uuid.UUID(str(raw["invited_by"]))) if raw.get("invited_by") else None
    except ValueError:
        return Rejection(number, "invited_by", "not a member id (UUID)")
    try:
        profile = personal.profile_changes(
            {k: v for k, v in raw.items() if k in _PROFILE_FIELDS},
            lambda c: known_channel(c, custom_channels),
        )
    except ProfileError as error:
        return Rejection(number, error.field, str(error))
    return ImportRow(number, channel, joined_at, None if ref is None else str(ref), invited_by,
                     Profile(**profile))


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("joined_at needs a timezone offset (ISO 8601)")
    return storable(moment)  # the years any request's Moment takes
