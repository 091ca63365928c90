"""Facts pushed in by partner platforms: delivery receipts and Standard Webhooks verification.

A delivery (one webhook request) may produce facts for several services. Each owning service
records its part itself, in one transaction that also records the part's receipt in its own
schema (`inbound_receipts`, kernel migration k0003): a replayed delivery finds the receipt, writes
nothing and gets the answer it got the first time. The receipt is claimed first, so a concurrent
duplicate waits on its unique index until the first commits (then replays) or rolls back (then
records).

Receipts are kept `retention` (72 h by default, `inbound_receipt_retention_hours`): longer than
any partner retries a delivery (Telegram for hours, VK a few times over minutes, Standard Webhooks
senders for about a day; services/inbound/README.md). Older ones are purged in passing, at most
every `PURGE_EVERY_SECONDS`, by the claim that finds them due; a delivery replayed after that
would be recorded again, which is why the retention outlasts every retry horizon.

`OneTransaction` lets a service run its existing handlers, each written as "open a transaction,
decide, append", inside the delivery's single transaction.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

# Standard Webhooks' recommended tolerance: a captured request cannot be replayed later than this.
DEFAULT_TOLERANCE = timedelta(minutes=5)
MAX_WEBHOOK_ID = 255
DEFAULT_RETENTION = timedelta(hours=72)
PURGE_EVERY_SECONDS = 300.0
# A purge rides on a delivery's transaction: it is bounded so that the delivery stays quick,
# and skips rows another purge holds so that two deliveries never wait on each other.
PURGE_AT_MOST = 5000


@dataclass(frozen=True, slots=True)
class Receipt:
    """Which part of which delivery: `part` names the owning service's share of it."""

    community_id: str
    source: str
    webhook_id: str
    part: str


class InboundReceipts:
    """The `inbound_receipts` table of the caller's schema, used inside the caller's transaction."""

    def __init__(
        self, retention: timedelta = DEFAULT_RETENTION,
        purge_every_seconds: float = PURGE_EVERY_SECONDS,
    ) -> None:
        self.retention = retention
        self.purge_every_seconds = purge_every_seconds
        self._last_purge: float | None = None

    async def claim(self, conn: AsyncConnection, receipt: Receipt) -> dict[str, Any] | None:
        """None when this part is new (record its facts, then `keep`); else the first answer."""
        await self._purge_now_and_then(conn)
        names = {"c": receipt.community_id, "s": receipt.source, "w": receipt.webhook_id,
                 "p": receipt.part}
        inserted = await conn.scalar(
            text(
                "INSERT INTO inbound_receipts (community_id, source, webhook_id, part)"
                " VALUES (:c, :s, :w, :p) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            names,
        )
        if inserted:
            return None
        answer = await conn.scalar(
            text(
                "SELECT answer FROM inbound_receipts WHERE community_id = :c AND source = :s"
                " AND webhook_id = :w AND part = :p"
            ),
            names,
        )
        return dict(answer) if isinstance(answer, dict) else {}

    async def keep(
        self, conn: AsyncConnection, receipt: Receipt, answer: Mapping[str, Any]
    ) -> None:
        """Store the answer with the claim, so a replay answers the same."""
        await conn.execute(
            text(
                "UPDATE inbound_receipts SET answer = CAST(:a AS jsonb) WHERE community_id = :c"
                " AND source = :s AND webhook_id = :w AND part = :p"
            ),
            {"a": json.dumps(answer, default=str), "c": receipt.community_id,
             "s": receipt.source, "w": receipt.webhook_id, "p": receipt.part},
        )


    async def record_once(
        self, engine: AsyncEngine, receipt: Receipt,
        record: Callable[[AsyncConnection], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Run `record` and keep its answer with the receipt, in one transaction; a replayed
        part records nothing and gets the first answer. Either way `replayed` says which."""
        async with engine.begin() as conn:
            if (answer := await self.claim(conn, receipt)) is not None:
                return {**answer, "replayed": True}
            answer = await record(conn)
            await self.keep(conn, receipt, answer)
        return {**answer, "replayed": False}

    async def purge(self, conn: AsyncConnection) -> int:
        """Forget receipts older than the retention (up to `PURGE_AT_MOST`); how many went."""
        gone = await conn.execute(
            text(
                "DELETE FROM inbound_receipts WHERE (community_id, source, webhook_id, part) IN"
                " (SELECT community_id, source, webhook_id, part FROM inbound_receipts"
                "  WHERE recorded_at < clock_timestamp() - CAST(:r AS interval)"
                "  LIMIT :n FOR UPDATE SKIP LOCKED)"
            ),
            {"r": self.retention, "n": PURGE_AT_MOST},
        )
        return int(gone.rowcount or 0)

    async def _purge_now_and_then(self, conn: AsyncConnection) -> None:
        now = time.monotonic()
        if self._last_purge is not None and now - self._last_purge < self.purge_every_seconds:
            return
        self._last_purge = now
        await self.purge(conn)


class OneTransaction:
    """Stands in for the engine a service's handlers were built with: `begin()` hands them the
    delivery's open connection instead of a new transaction, so every command of the delivery
    and its receipt commit or roll back together. Pass it where handlers expect an AsyncEngine;
    they use nothing but `begin()`."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        yield self.conn


class SignatureRefused(Exception):
    """The request is not provably from the partner: answer 401, record nothing."""


def verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> str:
    """The delivery's `webhook-id` if the body is signed with one of `secrets` (several during a
    rotation) at a `webhook-timestamp` within `tolerance` of `now`; else `SignatureRefused`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (webhook_id and stamp and signatures):
        raise SignatureRefused("webhook-id, webhook-timestamp and webhook-signature are required")
    if len(webhook_id) > MAX_WEBHOOK_ID or not webhook_id.isprintable():
        raise SignatureRefused(f"webhook-id must be 1 to {MAX_WEBHOOK_ID} printable characters")
    moment = _timestamp(stamp, tolerance, now or datetime.now(UTC))
    try:
        payload = body.decode()
    except UnicodeDecodeError as error:
        raise SignatureRefused("the body is not UTF-8") from error
    offered = [s.split(",", 1)[1] for s in signatures.split() if s.startswith("v1,")]
    for secret in secrets:
        expected = _signer(secret).sign(webhook_id, moment, payload).split(",", 1)[1]
        if any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
            return webhook_id
    raise SignatureRefused("no signature matches a current secret of this source")


def sign_standard_webhook(secret: str, webhook_id: str, moment: datetime, body: bytes) -> str:
    """The `webhook-signature` value a sender computes (for partners' docs and the tests)."""
    return _signer(secret).sign(webhook_id, moment, body.decode())


def is_standard_secret(secret: str) -> bool:
    """A key Standard Webhooks can sign with: `whsec_` and base64 of 24 to 64 random bytes."""
    if not secret.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        return False
    return 24 <= len(raw) <= 64


def _signer(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except (EmptyWebhookSecretError, ValueError) as error:
        raise SignatureRefused("a configured secret is not a whsec_ base64 key") from error


def _timestamp(stamp: str, tolerance: timedelta, now: datetime) -> datetime:
    if not stamp.isdigit():
        raise SignatureRefused("webhook-timestamp is not whole Unix seconds")
    moment = datetime.fromtimestamp(int(stamp), tz=UTC)
    if abs(now - moment) > tolerance:
        raise SignatureRefused(
            f"webhook-timestamp is more than {int(tolerance.total_seconds())} s from now"
        )
    return moment


def constant_time_equal(given: str | None, expected: str) -> bool:
    """A shared secret compared without leaking, through timing, how much of it matched."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
