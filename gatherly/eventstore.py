"""The event store: append with an expected version, read a stream, read everything in commit order.

Commit order, not insert order: a `bigserial` alone lets a reader skip a transaction that took a
lower number but committed later. Every row carries the id of the transaction that wrote it
(`xid8`), and `read_all` returns only rows of transactions older than the oldest one still running
(`pg_snapshot_xmin`), ordered by (transaction id, position). Nothing can commit below that line
later, so a reader that advances along it never skips an event.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from pydantic_core import to_json
from sqlalchemy import TextClause, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly import contracts
from gatherly.db import driver_in_transaction
from gatherly.envelope import DomainEvent, Envelope, new_event_id, new_event_ids


def wake_channel(source: str) -> str:
    """The NOTIFY channel a store's relay listens on: one per service, since channels are
    database-wide and every relay woken by every service's appends would poll for nothing."""
    return "gatherly_events_" + source.rstrip("/").rsplit("/", 1)[-1].replace("-", "_")


def _payload(data: dict[str, Any]) -> str:
    """An event's data as the JSON its row stores. pydantic-core's encoder, not `json.dumps`:
    a batch encodes a thousand payloads, and `json.dumps` took about 5 µs each against under 1
    µs. NaN and infinities stay the literals `json.dumps` writes (Postgres refuses both)."""
    return to_json(data, inf_nan_mode="constants").decode()


class ConcurrencyConflict(Exception):
    """Someone appended to the stream after the version the caller decided on."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        super().__init__(f"stream {stream_id}: expected version {expected}, found {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a reader stands in the global commit order."""

    tx_id: int
    position: int

    def __str__(self) -> str:
        return f"{self.tx_id}:{self.position}"

    @classmethod
    def parse(cls, value: str) -> Position:
        tx_id, position = value.split(":")
        return cls(int(tx_id), int(position))


START = Position(0, 0)

# An events row as `prepare_decided` makes it, in `_COPY_COLUMNS` order: callers only choose
# which of them to append.
EventRow = tuple[Any, ...]

_COLUMNS = "id, stream_id, community_id, type, version, occurred_at, recorded_at, data, traceparent"

# `read_all`'s statement, for asyncpg ($n parameters); the columns in `_COLUMNS` order.
_READ_ALL = (
    f"SELECT tx_id::text::bigint AS tx, position, {_COLUMNS} FROM events"
    " WHERE (tx_id, position) > ($1::text::xid8, $2)"
    " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY tx_id, position LIMIT $3"
)

# The events of an append as one `INSERT … SELECT FROM unnest(…)`; `{only_if}` lets a caller
# make it conditional on its own writes in the same statement.
_APPENDED = (
    "appended AS (INSERT INTO events"
    " (id, stream_id, community_id, type, version, occurred_at, data, traceparent)"
    " SELECT * FROM unnest(CAST(:ev_ids AS uuid[]), CAST(:ev_streams AS text[]),"
    " CAST(:ev_communities AS text[]), CAST(:ev_types AS text[]), CAST(:ev_versions AS int[]),"
    " CAST(:ev_times AS timestamptz[]), CAST(:ev_datas AS jsonb[]),"
    " CAST(:ev_traceparents AS text[])) WHERE {only_if} RETURNING 1)"
)
# The wake-up NOTIFY rides in the same statement: one round trip less per append.
_INSERT = text(f"WITH {_APPENDED.format(only_if='true')} SELECT pg_notify(:wake_channel, '')")
_NOTIFY = text("SELECT pg_notify(:wake_channel, '')")
_COPY_COLUMNS = ["id", "stream_id", "community_id", "type", "version", "occurred_at", "data",
                 "traceparent"]
# From this many events on, an append goes in with COPY, Postgres's bulk path (binary rows, no
# statement to plan with thousands of array elements); for a handful it would cost an extra
# round trip (the NOTIFY goes alone).
COPY_FROM = 100


@functools.lru_cache(maxsize=64)
def _if_written(writes: str) -> TextClause:
    """`append_if_written`'s statement, parsed once per caller's `writes` (constant SQL): parsing
    a text's bind names anew cost about a tenth of a join's CPU."""
    return text(
        f"WITH {writes}, {_APPENDED.format(only_if='EXISTS (SELECT FROM written)')}"
        " SELECT EXISTS (SELECT FROM written), pg_notify(:wake_channel, '')"
    )


class EventStore:
    """Appends and reads the events of one service; `source` names that service on the wire."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.wake_channel = wake_channel(source)

    async def append(
        self,
        conn: AsyncConnection,
        *,
        stream_id: str,
        community_id: str,
        expected_version: int,
        events: list[DomainEvent],
        traceparent: str | None = None,
    ) -> list[Envelope]:
        """Append in the caller's transaction; the unique (stream_id, version) is the lock."""
        current = await self.stream_version(conn, stream_id)
        if current != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, current)
        envelopes = [
            self.envelope(
                event, stream_id=stream_id, community_id=community_id,
                version=expected_version + offset, traceparent=traceparent,
            )
            for offset, event in enumerate(events, start=1)
        ]
        await self.append_envelopes(conn, envelopes)
        return envelopes

    def envelope(
        self,
        event: DomainEvent,
        *,
        stream_id: str,
        community_id: str,
        version: int,
        traceparent: str | None,
        event_id: str | None = None,
    ) -> Envelope:
        """The stored form of `event` as version `version` of `stream_id`, with a new id (or
        `event_id`, one of `new_event_ids`). Batch paths build these themselves and hand them
        to `append_envelopes`."""
        return Envelope(
            id=event_id or new_event_id(), source=self.source, type=event.type, subject=stream_id,
            community_id=community_id, sequence=version, time=event.time, data=event.data,
            traceparent=traceparent,
        )

    async def append_envelopes(self, conn: AsyncConnection, envelopes: list[Envelope]) -> None:
        """Insert prepared envelopes (many streams at once, for batch paths) in one statement.

        Every event's data must match its type's published contract: a service cannot put on the
        log a shape that consumers were never told about."""
        if not envelopes:
            return
        contracts.validate_all([e.type for e in envelopes], [e.data for e in envelopes])
        if len(envelopes) >= COPY_FROM:
            await self._copy(conn, envelopes)
            return
        try:
            await conn.execute(_INSERT, self._params(envelopes))
        except IntegrityError as error:
            first = envelopes[0]
            raise ConcurrencyConflict(first.subject, first.sequence - 1) from error

    async def append_decided(
        self, conn: AsyncConnection, decided: Sequence[tuple[str, int, DomainEvent]], *,
        community_id: str, traceparent: str | None,
    ) -> None:
        """Append events of many streams, each `(stream id, version, event)`, with new ids, as
        `append_envelopes` would once given their envelopes, without building them: for a
        thousand-event batch the envelopes cost more than the contract checks. Same checks,
        same conflict, same COPY from `COPY_FROM` events on."""
        if len(decided) < COPY_FROM:
            await self.append_envelopes(conn, [
                self.envelope(event, stream_id=stream_id, community_id=community_id,
                              version=version, traceparent=traceparent)
                for stream_id, version, event in decided
            ])
            return
        await self._copy_records(conn, self.prepare_decided(
            decided, community_id=community_id, traceparent=traceparent))

    def prepare_decided(
        self, decided: Sequence[tuple[str, int, DomainEvent]], *, community_id: str,
        traceparent: str | None,
    ) -> list[EventRow]:
        """The stored rows of `decided` (as `append_decided` takes them), with new ids, checked
        against their contracts and encoded, but not appended: a bulk path makes the next
        batch's rows while the current batch is in Postgres, then appends those it still wants
        with `append_prepared`. No I/O; raises `ContractViolation` as every append does."""
        events = [event for _, _, event in decided]
        contracts.validate_all([e.type for e in events], [e.data for e in events])
        return [
            (event_id, stream_id, community_id, event.type, version, event.time,
             _payload(event.data), traceparent)
            for event_id, (stream_id, version, event) in zip(
                new_event_ids(len(decided)), decided, strict=True)
        ]

    async def append_prepared(self, conn: AsyncConnection, rows: Sequence[EventRow]) -> None:
        """Append rows made by `prepare_decided` (all, or those still wanted) by COPY on the
        caller's transaction, with the same conflict as every append."""
        if rows:
            await self._copy_records(conn, list(rows))

    async def append_if_written(
        self, conn: AsyncConnection, envelopes: list[Envelope], *, writes: str,
        params: dict[str, Any],
    ) -> bool:
        """Append `envelopes` in ONE statement with the caller's own writes, and only if they
        wrote: `writes` is SQL for the statement's first `WITH` items, the last one named
        `written`, which returns a row when the events belong on the log (an
        `INSERT … ON CONFLICT DO NOTHING RETURNING …`, say). One statement is atomic by itself,
        so a caller on an autocommit connection pays no BEGIN and COMMIT round trips. The
        contracts are checked first, as for every append; True when the events went in."""
        for envelope in envelopes:
            contracts.validate(envelope.type, envelope.data)
        try:
            result = await conn.execute(_if_written(writes), {**params, **self._params(envelopes)})
        except IntegrityError as error:
            first = envelopes[0]
            raise ConcurrencyConflict(first.subject, first.sequence - 1) from error
        return bool(result.scalar_one())

    def _params(self, envelopes: list[Envelope]) -> dict[str, Any]:
        return {
            "ev_ids": [e.id for e in envelopes],
            "ev_streams": [e.subject for e in envelopes],
            "ev_communities": [e.community_id for e in envelopes],
            "ev_types": [e.type for e in envelopes],
            "ev_versions": [e.sequence for e in envelopes],
            "ev_times": [e.time for e in envelopes],
            "ev_datas": [_payload(e.data) for e in envelopes],
            "ev_traceparents": [e.traceparent for e in envelopes],
            # A hint only: the relay also polls, so a lost notification delays, never loses.
            "wake_channel": self.wake_channel,
        }

    async def _copy(self, conn: AsyncConnection, envelopes: list[Envelope]) -> None:
        """COPY the rows in on the caller's transaction. The NOTIFY goes first, through
        SQLAlchemy: that also opens the transaction on the driver connection (SQLAlchemy begins
        it lazily, at the first statement), so the COPY is part of it, commits with it or not
        at all. Position and transaction id come from the columns' defaults, as for an insert."""
        await self._copy_records(conn, [
            (e.id, e.subject, e.community_id, e.type, e.sequence, e.time, _payload(e.data),
             e.traceparent)
            for e in envelopes
        ])

    async def _copy_records(self, conn: AsyncConnection, records: list[tuple[Any, ...]]) -> None:
        """The rows, in `_COPY_COLUMNS` order, by COPY after the NOTIFY (see `_copy`)."""
        await conn.execute(_NOTIFY, {"wake_channel": self.wake_channel})
        driver = await driver_in_transaction(conn)
        try:
            await driver.copy_records_to_table("events", records=records, columns=_COPY_COLUMNS)
        except UniqueViolationError as error:
            first = records[0]
            raise ConcurrencyConflict(first[1], first[4] - 1) from error

    async def stream_version(self, conn: AsyncConnection, stream_id: str) -> int:
        result = await conn.execute(
            text("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = :s"),
            {"s": stream_id},
        )
        return int(result.scalar_one())

    async def redact(
        self, conn: AsyncConnection, stream_id: str, kept: Mapping[str, frozenset[str]]
    ) -> None:
        """Erasure (GDPR) in the log itself: each stored event of the stream keeps only the data
        fields `kept` names for its type, and none of a type it does not name. The one rewrite
        the store allows; what was published before stays on the stream (docs/adr/0003)."""
        await conn.execute(
            text(
                "UPDATE events e SET data = (SELECT coalesce(jsonb_object_agg(f.key, f.value),"
                " '{}') FROM jsonb_each(e.data) f WHERE CAST(:kept AS jsonb) -> e.type ? f.key)"
                " WHERE stream_id = :s"
            ),
            {"s": stream_id, "kept": json.dumps({t: sorted(f) for t, f in kept.items()})},
        )

    async def read_stream(self, conn: AsyncConnection, stream_id: str) -> list[Envelope]:
        result = await conn.execute(
            text(f"SELECT {_COLUMNS} FROM events WHERE stream_id = :s ORDER BY version"),
            {"s": stream_id},
        )
        return [self._envelope(row) for row in result]

    async def read_all(
        self, conn: AsyncConnection, after: Position, limit: int
    ) -> list[tuple[Position, Envelope]]:
        """Events committed after `after`, in commit order, never past a still-open transaction.

        One statement, sent to the asyncpg connection under `conn` (prepared once by its
        statement cache): SQLAlchemy's result rows, read by name, cost the relay more per event
        than the rest of its read. `data` arrives decoded by the engine's jsonb codec, as
        through SQLAlchemy. A failed read invalidates `conn`, as SQLAlchemy does on a lost
        connection: a dead one would otherwise go back to the pool and fail the next read."""
        driver = (await conn.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("read_all on a connection already given back")
        try:
            rows = await driver.fetch(_READ_ALL, str(after.tx_id), after.position, limit)
        except Exception:
            await conn.invalidate()
            raise
        return [(Position(tx, position), self._envelope(columns))
                for tx, position, *columns in rows]

    async def count_after(self, conn: AsyncConnection, after: Position) -> int:
        """How many committed events a reader at `after` has yet to see (relay lag)."""
        result = await conn.execute(
            text(
                "SELECT count(*) FROM events"
                " WHERE (tx_id, position) > (CAST(:tx AS text)::xid8, :pos)"
            ),
            {"tx": str(after.tx_id), "pos": after.position},
        )
        return int(result.scalar_one())

    def _envelope(self, row: Sequence[Any]) -> Envelope:
        """An event from its `_COLUMNS`, by position (SQLAlchemy rows and asyncpg records alike:
        the relay's read skips SQLAlchemy's rows by name)."""
        event_id, stream_id, community_id, type_, version, occurred_at, recorded_at, data, tp = row
        return Envelope(
            id=str(event_id), source=self.source, type=type_, subject=stream_id,
            community_id=community_id, sequence=version, time=occurred_at,
            data=data if isinstance(data, dict) else json.loads(data),
            traceparent=tp, recorded_at=recorded_at,
        )
