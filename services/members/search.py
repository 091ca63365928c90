"""Member search over the list and the profile store: filters, a stable cursor, cheap totals.

Order is the list's insertion order (`listed`, unique and never reused), so a cursor is one
number and a page never skips or repeats a member while others join. The total is counted on the
first page only: later pages would pay for a count the client already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.members.domain import MemberStatus
from services.members.personal import search_key
from services.members.views import MEMBER_COLUMNS, MEMBER_FROM, MemberView, to_view


@dataclass(frozen=True, slots=True)
class MemberFilter:
    status: MemberStatus | None = None
    role: str | None = None
    channel: str | None = None
    tag: str | None = None
    joined_from: datetime | None = None
    joined_to: datetime | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class MemberPage:
    members: list[MemberView]
    next_after: int | None
    total: int | None


def _like_prefix(value: str) -> str:
    """The pattern for keys that start with `value`'s key (`personal.search_key`)."""
    key = search_key(value) or ""
    return key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(community_id: str, where: MemberFilter) -> tuple[list[str], dict[str, Any]]:
    conditions = ["l.community_id = :c"]
    params: dict[str, Any] = {"c": community_id}
    if where.status is not None:
        conditions.append("l.status = :status")
        params["status"] = where.status.value
    if where.role is not None:
        conditions.append("l.roles @> ARRAY[CAST(:role AS text)]")
        params["role"] = where.role
    if where.channel is not None:
        conditions.append("l.channel = :channel")
        params["channel"] = where.channel
    if where.tag is not None:
        conditions.append("p.interests @> ARRAY[CAST(:tag AS text)]")
        params["tag"] = where.tag.lower()
    if where.joined_from is not None:
        conditions.append("l.joined_at >= :joined_from")
        params["joined_from"] = where.joined_from
    if where.joined_to is not None:
        conditions.append("l.joined_at < :joined_to")
        params["joined_to"] = where.joined_to
    if where.prefix:
        conditions.append(
            "(p.name_key LIKE :prefix ESCAPE '\\' OR p.email_key LIKE :prefix ESCAPE '\\')"
        )
        params["prefix"] = _like_prefix(where.prefix)
    return conditions, params


async def search(
    conn: AsyncConnection, community_id: str, where: MemberFilter, *, after: int, limit: int
) -> MemberPage:
    conditions, params = _conditions(community_id, where)
    clause = " AND ".join(conditions)
    rows = (
        await conn.execute(
            text(
                f"SELECT {MEMBER_COLUMNS} FROM {MEMBER_FROM} WHERE {clause} AND l.listed > :after"
                " ORDER BY l.listed LIMIT :limit"
            ),
            {**params, "after": after, "limit": limit + 1},
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    total = None
    if after == 0:
        count = text(f"SELECT count(*) FROM {MEMBER_FROM} WHERE {clause}")
        total = int(await conn.scalar(count, params) or 0)
    next_after = rows[-1].listed if more and rows else None
    return MemberPage([to_view(row) for row in rows], next_after, total)
