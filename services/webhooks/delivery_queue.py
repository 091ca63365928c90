"""The delivery worker's SQL: claim the head of each endpoint's line, record an attempt's result.

An endpoint's line is its pending deliveries in id order (the order the fan-out recorded them).
Only the head may be claimed, and only when it is due and not leased: so one delivery per endpoint
is ever in flight, and a later fact never overtakes an earlier one. A lease, not a held
transaction, marks a claim: a worker that dies mid-send leaves a lease that simply runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CLAIMED = (
    "d.id, d.subscription_id::text AS subscription_id, d.community_id, d.message_id, d.body,"
    " d.attempts, s.url,"
    " ARRAY(SELECT secret FROM subscription_secrets k WHERE k.subscription_id = d.subscription_id"
    "       AND (k.expires_at IS NULL OR k.expires_at > now()) ORDER BY k.created_at DESC)"
    " AS secrets"
)
_FREE = "(d.leased_until IS NULL OR d.leased_until < now())"

CLAIM_HEADS = text(
    "UPDATE deliveries d SET leased_until = now() + make_interval(secs => :lease)"
    " FROM subscriptions s,"
    " (SELECT head.id FROM"
    "   (SELECT DISTINCT ON (subscription_id) id, subscription_id, next_attempt_at,"
    "    leased_until FROM deliveries WHERE status = 'pending' ORDER BY subscription_id, id) head"
    "  JOIN subscriptions e ON e.id = head.subscription_id"
    "  WHERE e.enabled AND head.next_attempt_at <= now()"
    "  AND (head.leased_until IS NULL OR head.leased_until < now())"
    "  AND NOT (e.id = ANY(CAST(:busy AS uuid[])))"
    "  ORDER BY head.next_attempt_at LIMIT :limit) due"
    f" WHERE d.id = due.id AND s.id = d.subscription_id AND d.status = 'pending' AND {_FREE}"
    f" RETURNING {_CLAIMED}"
)

CLAIM_NEXT = text(
    "UPDATE deliveries d SET leased_until = now() + make_interval(secs => :lease)"
    " FROM subscriptions s,"
    " (SELECT id FROM deliveries WHERE subscription_id = :s AND status = 'pending'"
    "  ORDER BY id LIMIT 1) head"
    " WHERE d.id = head.id AND s.id = d.subscription_id AND s.enabled"
    f" AND d.next_attempt_at <= now() AND {_FREE}"
    f" RETURNING {_CLAIMED}"
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    subscription_id: str
    community_id: str
    message_id: str
    body: str
    attempts: int
    url: str
    secrets: list[str]


def claimed(rows: Any) -> list[Claimed]:
    return [Claimed(**{**row._mapping, "secrets": list(row.secrets)}) for row in rows]


async def claim_heads(conn: AsyncConnection, limit: int, busy: list[str],
                      lease: float) -> list[Claimed]:
    rows = await conn.execute(CLAIM_HEADS, {"limit": limit, "busy": busy, "lease": lease})
    return claimed(rows)


async def claim_next(conn: AsyncConnection, subscription_id: str, lease: float) -> Claimed | None:
    found = claimed(await conn.execute(CLAIM_NEXT, {"s": subscription_id, "lease": lease}))
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    enabled: bool
    failing_since: datetime | None


async def lock_endpoint(conn: AsyncConnection, subscription_id: str) -> Endpoint | None:
    row = (await conn.execute(text(
        "SELECT enabled, failing_since FROM subscriptions WHERE id = :s FOR UPDATE"
    ), {"s": subscription_id})).one_or_none()
    return Endpoint(row.enabled, row.failing_since) if row else None


async def log_attempt(conn: AsyncConnection, delivery_id: int, status: int | None,
                      latency_ms: int, error_class: str | None, excerpt: str,
                      verdict: str) -> None:
    await conn.execute(text(
        "INSERT INTO delivery_attempts"
        " (delivery_id, status_code, latency_ms, error_class, response_excerpt, verdict)"
        " VALUES (:d, :status, :latency, :error, :excerpt, :verdict)"
    ), {"d": delivery_id, "status": status, "latency": latency_ms, "error": error_class,
        "excerpt": excerpt, "verdict": verdict})


async def finish(conn: AsyncConnection, delivery_id: int, status: str, attempts: int) -> None:
    await conn.execute(text(
        "UPDATE deliveries SET status = :status, attempts = :attempts, leased_until = NULL,"
        " finished_at = clock_timestamp() WHERE id = :d"
    ), {"d": delivery_id, "status": status, "attempts": attempts})


async def retry_at(conn: AsyncConnection, delivery_id: int, attempts: int,
                   at: datetime) -> None:
    await conn.execute(text(
        "UPDATE deliveries SET attempts = :attempts, next_attempt_at = :at, leased_until = NULL"
        " WHERE id = :d"
    ), {"d": delivery_id, "attempts": attempts, "at": at})


async def mark_endpoint(conn: AsyncConnection, subscription_id: str, *, failing: bool,
                        disabled_reason: str | None = None) -> None:
    """A success clears the failure record; a failure starts it (once); disabling stops all."""
    await conn.execute(text(
        "UPDATE subscriptions SET"
        " failing_since = CASE WHEN :failing THEN coalesce(failing_since, now()) END,"
        " enabled = enabled AND CAST(:reason AS text) IS NULL,"
        " disabled_reason = coalesce(CAST(:reason AS text), disabled_reason),"
        " version = version + CASE WHEN CAST(:reason AS text) IS NULL THEN 0 ELSE 1 END,"
        " updated_at = CASE WHEN CAST(:reason AS text) IS NULL THEN updated_at"
        "   ELSE clock_timestamp() END"
        " WHERE id = :s"
    ), {"s": subscription_id, "failing": failing, "reason": disabled_reason})
