"""The edge schema's tables: communities and API keys, read and written with plain SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

COMMUNITY_COLUMNS = (
    "id, name, slug, time_zone, custom_channels, feedback_sla_hours, version, created_at,"
    " updated_at, seq"
)
KEY_COLUMNS = (
    "id, community_id, name, scopes, secret_hash, rate_per_second, burst, expires_at,"
    " revoked_at, created_at, seq"
)


@dataclass(frozen=True)
class Community:
    id: str
    name: str
    slug: str
    time_zone: str
    custom_channels: list[str]
    feedback_sla_hours: int
    version: int
    created_at: datetime
    updated_at: datetime
    seq: int


@dataclass(frozen=True)
class KeyRecord:
    id: str
    community_id: str
    name: str | None
    scopes: list[str]
    secret_hash: bytes
    rate_per_second: float | None
    burst: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    seq: int


class SlugTaken(Exception):
    pass


def _community(row: Any) -> Community:
    return Community(**row._mapping)


def _key(row: Any) -> KeyRecord:
    values = dict(row._mapping)
    values["secret_hash"] = bytes(values["secret_hash"])
    return KeyRecord(**values)


async def insert_community(conn: AsyncConnection, values: dict[str, Any]) -> Community:
    taken = await conn.scalar(
        text("SELECT 1 FROM communities WHERE slug = :slug"), {"slug": values["slug"]}
    )
    if taken:
        raise SlugTaken(values["slug"])
    row = (
        await conn.execute(
            text(
                "INSERT INTO communities (id, name, slug, time_zone, custom_channels,"
                " feedback_sla_hours) VALUES (:id, :name, :slug, :time_zone, :custom_channels,"
                f" :feedback_sla_hours) ON CONFLICT DO NOTHING RETURNING {COMMUNITY_COLUMNS}"
            ),
            values,
        )
    ).first()
    if row is None:  # a concurrent create took the slug between the check and the insert
        raise SlugTaken(values["slug"])
    return _community(row)


async def get_community(
    conn: AsyncConnection, community_id: str, *, for_update: bool = False
) -> Community | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(f"SELECT {COMMUNITY_COLUMNS} FROM communities WHERE id = :id{lock}"),
            {"id": community_id},
        )
    ).first()
    return _community(row) if row else None


async def page_communities(conn: AsyncConnection, after: int, limit: int) -> list[Community]:
    rows = await conn.execute(
        text(
            f"SELECT {COMMUNITY_COLUMNS} FROM communities WHERE seq > :after"
            " ORDER BY seq LIMIT :limit"
        ),
        {"after": after, "limit": limit},
    )
    return [_community(row) for row in rows]


async def update_community(
    conn: AsyncConnection, community_id: str, changes: dict[str, Any]
) -> Community:
    if "slug" in changes:
        taken = await conn.scalar(
            text("SELECT 1 FROM communities WHERE slug = :slug AND id <> :id"),
            {"slug": changes["slug"], "id": community_id},
        )
        if taken:
            raise SlugTaken(changes["slug"])
    assignments = "".join(f"{column} = :{column}, " for column in changes)
    row = (
        await conn.execute(
            text(
                f"UPDATE communities SET {assignments}version = version + 1,"
                f" updated_at = clock_timestamp() WHERE id = :id RETURNING {COMMUNITY_COLUMNS}"
            ),
            {**changes, "id": community_id},
        )
    ).one()
    return _community(row)


async def insert_key(conn: AsyncConnection, values: dict[str, Any]) -> KeyRecord:
    row = (
        await conn.execute(
            text(
                "INSERT INTO api_keys (id, community_id, name, scopes, secret_hash,"
                " rate_per_second, burst, expires_at) VALUES (:id, :community_id, :name,"
                " :scopes, :secret_hash, :rate_per_second, :burst, :expires_at)"
                f" RETURNING {KEY_COLUMNS}"
            ),
            values,
        )
    ).one()
    return _key(row)


async def page_keys(
    conn: AsyncConnection, community_id: str, after: int, limit: int
) -> list[KeyRecord]:
    rows = await conn.execute(
        text(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE community_id = :c AND seq > :after"
            " ORDER BY seq LIMIT :limit"
        ),
        {"c": community_id, "after": after, "limit": limit},
    )
    return [_key(row) for row in rows]


async def revoke_key(conn: AsyncConnection, community_id: str, key_id: str) -> bool:
    """Revoke a key of the community; False when it has no such key. Revoking twice is fine."""
    row = (
        await conn.execute(
            text(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp())"
                " WHERE id = :id AND community_id = :c RETURNING id"
            ),
            {"id": key_id, "c": community_id},
        )
    ).first()
    return row is not None


async def usable_keys(conn: AsyncConnection) -> list[KeyRecord]:
    """Every key not revoked (expired ones too: the cache answers them with 'expired')."""
    rows = await conn.execute(
        text(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL")
    )
    return [_key(row) for row in rows]
