"""The webhooks tables as the API sees them: subscriptions, secrets, the delivery log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_SUBSCRIPTION = (
    "listed, id::text AS id, community_id, url, event_types, description, enabled,"
    " disabled_reason, failing_since, version, created_at, updated_at"
)
_DELIVERY = (
    "id, event_id::text AS event_id, event_type, message_id, status, attempts, next_attempt_at,"
    " created_at, finished_at"
)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    community_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    version: int
    created_at: datetime
    updated_at: datetime
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    listed: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    event_id: str
    event_type: str
    message_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error_class: str | None
    response_excerpt: str
    verdict: str


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id, community_id=row.community_id, url=row.url, event_types=list(row.event_types),
        description=row.description, enabled=row.enabled, version=row.version,
        created_at=row.created_at, updated_at=row.updated_at,
        disabled_reason=row.disabled_reason, failing_since=row.failing_since, listed=row.listed,
    )


async def insert(conn: AsyncConnection, community_id: str, subscription_id: str, url: str,
                 event_types: list[str], description: str, enabled: bool,
                 secret: str) -> Subscription:
    row = (await conn.execute(text(
        "INSERT INTO subscriptions (id, community_id, url, event_types, description, enabled)"
        " VALUES (:id, :c, :url, :types, :d, :enabled)"
        f" RETURNING {_SUBSCRIPTION}"
    ), {"id": subscription_id, "c": community_id, "url": url, "types": event_types,
        "d": description, "enabled": enabled})).one()
    await add_secret(conn, subscription_id, secret)
    return _subscription(row)


async def get(conn: AsyncConnection, community_id: str, subscription_id: str,
              *, lock: bool = False) -> Subscription | None:
    row = (await conn.execute(text(
        f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE community_id = :c AND id = :id"
        + (" FOR UPDATE" if lock else "")
    ), {"c": community_id, "id": subscription_id})).one_or_none()
    return _subscription(row) if row else None


async def page(conn: AsyncConnection, community_id: str, after: int,
               limit: int) -> list[Subscription]:
    result = await conn.execute(text(
        f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE community_id = :c AND listed > :after"
        " ORDER BY listed LIMIT :limit"
    ), {"c": community_id, "after": after, "limit": limit})
    return [_subscription(row) for row in result]


async def save(conn: AsyncConnection, subscription: Subscription) -> Subscription:
    """Write the changed fields and bump the version; re-enabling clears the failure record."""
    row = (await conn.execute(text(
        "UPDATE subscriptions SET url = :url, event_types = :types, description = :d,"
        " enabled = :enabled,"
        " disabled_reason = CASE WHEN :enabled THEN NULL ELSE disabled_reason END,"
        " failing_since = CASE WHEN :enabled THEN NULL ELSE failing_since END,"
        " version = version + 1, updated_at = clock_timestamp()"
        f" WHERE id = :id RETURNING {_SUBSCRIPTION}"
    ), {"id": subscription.id, "url": subscription.url, "types": subscription.event_types,
        "d": subscription.description, "enabled": subscription.enabled})).one()
    return _subscription(row)


async def delete(conn: AsyncConnection, community_id: str, subscription_id: str) -> bool:
    result = await conn.execute(text(
        "DELETE FROM subscriptions WHERE community_id = :c AND id = :id RETURNING id"
    ), {"c": community_id, "id": subscription_id})
    return result.one_or_none() is not None


async def add_secret(conn: AsyncConnection, subscription_id: str, secret: str) -> None:
    await conn.execute(text(
        "INSERT INTO subscription_secrets (subscription_id, secret) VALUES (:s, :secret)"
    ), {"s": subscription_id, "secret": secret})


async def retire_secrets(conn: AsyncConnection, subscription_id: str, at: datetime) -> None:
    """The current secret (and any still in grace) signs until `at`, not after."""
    await conn.execute(text(
        "UPDATE subscription_secrets SET expires_at = least(coalesce(expires_at, :at), :at)"
        " WHERE subscription_id = :s"
    ), {"s": subscription_id, "at": at})
    await conn.execute(text(
        "DELETE FROM subscription_secrets WHERE subscription_id = :s AND expires_at <= now()"
    ), {"s": subscription_id})


async def active_secrets(conn: AsyncConnection, subscription_id: str) -> list[str]:
    """Newest first: the current secret, then rotated ones still in their grace period."""
    result = await conn.execute(text(
        "SELECT secret FROM subscription_secrets WHERE subscription_id = :s"
        " AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC"
    ), {"s": subscription_id})
    return [row.secret for row in result]


async def deliveries(conn: AsyncConnection, subscription_id: str, before: int | None,
                     limit: int, status: str | None) -> list[DeliveryRecord]:
    """Newest first."""
    result = await conn.execute(text(
        f"SELECT {_DELIVERY} FROM deliveries WHERE subscription_id = :s"
        " AND (CAST(:before AS bigint) IS NULL OR id < :before)"
        " AND (CAST(:status AS text) IS NULL OR status = :status)"
        " ORDER BY id DESC LIMIT :limit"
    ), {"s": subscription_id, "before": before, "status": status, "limit": limit})
    return [DeliveryRecord(**row._mapping) for row in result]


async def delivery(conn: AsyncConnection, subscription_id: str,
                   delivery_id: int) -> DeliveryRecord | None:
    row = (await conn.execute(text(
        f"SELECT {_DELIVERY} FROM deliveries WHERE subscription_id = :s AND id = :d"
    ), {"s": subscription_id, "d": delivery_id})).one_or_none()
    return DeliveryRecord(**row._mapping) if row else None


async def attempts(conn: AsyncConnection, delivery_id: int) -> list[AttemptRecord]:
    result = await conn.execute(text(
        "SELECT attempted_at, status_code, latency_ms, error_class, response_excerpt, verdict"
        " FROM delivery_attempts WHERE delivery_id = :d ORDER BY id"
    ), {"d": delivery_id})
    return [AttemptRecord(**row._mapping) for row in result]


async def send_again(conn: AsyncConnection, subscription_id: str, *,
                     delivery_id: int | None = None, failed_since: datetime | None = None) -> int:
    """Put deliveries back in line with a fresh schedule: one (resend, whatever its status), or
    every failed one recorded since a time (recover). How many were put back."""
    result = await conn.execute(text(
        "UPDATE deliveries SET status = 'pending', attempts = 0,"
        " next_attempt_at = clock_timestamp(), leased_until = NULL, finished_at = NULL"
        " WHERE subscription_id = :s"
        " AND (CAST(:d AS bigint) IS NULL OR id = :d)"
        " AND (CAST(:since AS timestamptz) IS NULL OR (status = 'failed' AND created_at >= :since))"
        " RETURNING id"
    ), {"s": subscription_id, "d": delivery_id, "since": failed_since})
    count = len(result.all())
    if count:
        await conn.execute(text("NOTIFY webhooks_due"))
    return count
