"""The member list: the service's own read model, written in the command's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.members.domain import Member, MemberStatus

_COLUMNS = (
    "listed, id::text AS id, community_id, channel, status, invited_by::text AS invited_by,"
    " external_ref, joined_at, left_at, version"
)


async def save(conn: AsyncConnection, member: Member) -> None:
    await conn.execute(
        text(
            "INSERT INTO member_list (id, community_id, channel, status, invited_by,"
            " external_ref, joined_at, left_at, version)"
            " VALUES (:id, :community_id, :channel, :status, :invited_by, :external_ref,"
            " :joined_at, :left_at, :version)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
            " left_at = excluded.left_at, version = excluded.version"
        ),
        {
            "id": member.id,
            "community_id": member.community_id,
            "channel": member.channel,
            "status": member.status.value,
            "invited_by": member.invited_by,
            "external_ref": member.external_ref,
            "joined_at": member.joined_at,
            "left_at": member.left_at,
            "version": member.version,
        },
    )


def _member(row: Any) -> Member:
    return Member(
        id=row.id,
        community_id=row.community_id,
        channel=row.channel,
        status=MemberStatus(row.status),
        joined_at=row.joined_at,
        invited_by=row.invited_by,
        external_ref=row.external_ref,
        left_at=row.left_at,
        version=row.version,
    )


async def get(conn: AsyncConnection, community_id: str, member_id: str) -> Member | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM member_list"
                " WHERE community_id = :c AND id = CAST(:id AS uuid)"
            ),
            {"c": community_id, "id": member_id},
        )
    ).first()
    return _member(row) if row else None


async def page(
    conn: AsyncConnection,
    community_id: str,
    *,
    after: int,
    limit: int,
    status: MemberStatus | None,
) -> tuple[list[Member], int | None]:
    """One page in join order; the second value is where the next page starts, if any."""
    rows = (
        await conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM member_list WHERE community_id = :c AND listed > :after"
                " AND (CAST(:status AS text) IS NULL OR status = :status)"
                " ORDER BY listed LIMIT :limit"
            ),
            {"c": community_id, "after": after, "status": status, "limit": limit + 1},
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_member(row) for row in rows], (rows[-1].listed if more and rows else None)
