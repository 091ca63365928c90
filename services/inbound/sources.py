"""The partner sources a community accepts deliveries from: kind, secrets, VK's confirmation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
# Telegram's rule for setWebhook's secret_token.
TELEGRAM_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class Kind(StrEnum):
    STANDARD = "standard"  # our own command shapes, Standard Webhooks signatures
    TELEGRAM = "telegram"  # Bot API updates, X-Telegram-Bot-Api-Secret-Token
    VK = "vk"  # Callback API events, `secret` in the body, confirmation handshake


@dataclass(frozen=True, slots=True)
class Source:
    community_id: str
    name: str
    kind: Kind
    secrets: tuple[str, ...]
    confirmation: str | None = None


async def get(conn: AsyncConnection, community_id: str, name: str) -> Source | None:
    row = (
        await conn.execute(
            text("SELECT community_id, name, kind, secrets, confirmation FROM inbound_sources"
                 " WHERE community_id = :c AND name = :n"),
            {"c": community_id, "n": name},
        )
    ).first()
    if row is None:
        return None
    return Source(row.community_id, row.name, Kind(row.kind), tuple(row.secrets),
                  row.confirmation)


async def put(conn: AsyncConnection, source: Source) -> bool:
    """Create or replace; True when it is new."""
    created = await conn.scalar(
        text(
            "INSERT INTO inbound_sources (community_id, name, kind, secrets, confirmation)"
            " VALUES (:c, :n, :k, :s, :conf) ON CONFLICT (community_id, name) DO UPDATE"
            " SET kind = EXCLUDED.kind, secrets = EXCLUDED.secrets,"
            " confirmation = EXCLUDED.confirmation, updated_at = now()"
            " RETURNING xmax = 0"
        ),
        {"c": source.community_id, "n": source.name, "k": source.kind.value,
         "s": list(source.secrets), "conf": source.confirmation},
    )
    return bool(created)


async def listed(conn: AsyncConnection, community_id: str) -> list[Source]:
    rows = await conn.execute(
        text("SELECT community_id, name, kind, secrets, confirmation FROM inbound_sources"
             " WHERE community_id = :c ORDER BY name"),
        {"c": community_id},
    )
    return [Source(r.community_id, r.name, Kind(r.kind), tuple(r.secrets), r.confirmation)
            for r in rows]


async def delete(conn: AsyncConnection, community_id: str, name: str) -> bool:
    deleted = await conn.scalar(
        text("DELETE FROM inbound_sources WHERE community_id = :c AND name = :n RETURNING 1"),
        {"c": community_id, "n": name},
    )
    return bool(deleted)
