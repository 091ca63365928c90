"""The `idempotency_keys` table behind `gatherly.idempotency`: claims, answers, purging."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

ABANDONED_AFTER = timedelta(seconds=60)
PURGE_EVERY_SECONDS = 300.0
DATABASE_ERRORS = (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@dataclass(frozen=True)
class Caller:
    key_id: str
    community_id: str
    idempotency_key: str


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Claim(Enum):
    CLAIMED = "claimed"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"
    REPLAY = "replay"


class IdempotencyStore:
    """The `idempotency_keys` table of one service schema (kernel migration k0002)."""

    def __init__(self, engine: AsyncEngine, retention: timedelta) -> None:
        self.engine = engine
        self.retention = retention
        self._last_purge = 0.0

    async def claim(self, caller: Caller, fingerprint: bytes) -> tuple[Claim, Answer | None]:
        await self._purge_now_and_then()
        names = {
            "k": caller.key_id, "c": caller.community_id, "i": caller.idempotency_key,
            "f": fingerprint, "retention": self.retention, "abandoned": ABANDONED_AFTER,
        }
        async with self.engine.begin() as conn:
            inserted = await conn.scalar(
                text(
                    "INSERT INTO idempotency_keys (key_id, community_id, idempotency_key,"
                    " fingerprint) VALUES (:k, :c, :i, :f) ON CONFLICT DO NOTHING RETURNING 1"
                ),
                names,
            )
            if inserted:
                return Claim.CLAIMED, None
            # Taken over when expired, or when its runner died before storing an answer.
            taken = await conn.scalar(
                text(
                    "UPDATE idempotency_keys SET fingerprint = :f, status = NULL, headers = NULL,"
                    " body = NULL, created_at = clock_timestamp()"
                    " WHERE key_id = :k AND community_id = :c AND idempotency_key = :i"
                    " AND (created_at < clock_timestamp() - CAST(:retention AS interval)"
                    " OR (status IS NULL"
                    " AND created_at < clock_timestamp() - CAST(:abandoned AS interval)))"
                    " RETURNING 1"
                ),
                names,
            )
            if taken:
                return Claim.CLAIMED, None
            row = (
                await conn.execute(
                    text(
                        "SELECT fingerprint, status, headers, body FROM idempotency_keys"
                        " WHERE key_id = :k AND community_id = :c AND idempotency_key = :i"
                    ),
                    names,
                )
            ).one()
        if bytes(row.fingerprint) != fingerprint:
            return Claim.MISMATCH, None
        if row.status is None:
            return Claim.IN_PROGRESS, None
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in row.headers]
        return Claim.REPLAY, Answer(row.status, headers, bytes(row.body))

    async def complete(self, caller: Caller, answer: Answer) -> None:
        headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in answer.headers]
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE idempotency_keys SET status = :s, headers = CAST(:h AS jsonb),"
                    " body = :b WHERE key_id = :k AND community_id = :c AND idempotency_key = :i"
                ),
                {
                    "s": answer.status, "h": json.dumps(headers), "b": answer.body,
                    "k": caller.key_id, "c": caller.community_id, "i": caller.idempotency_key,
                },
            )

    async def release(self, caller: Caller) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "DELETE FROM idempotency_keys WHERE key_id = :k AND community_id = :c"
                    " AND idempotency_key = :i AND status IS NULL"
                ),
                {"k": caller.key_id, "c": caller.community_id, "i": caller.idempotency_key},
            )

    async def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "DELETE FROM idempotency_keys"
                    " WHERE created_at < clock_timestamp() - CAST(:r AS interval)"
                ),
                {"r": self.retention},
            )
