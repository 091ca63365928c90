"""The member list and the erasable profile store: the service's own tables, written by handlers
in the command's transaction, read by routes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.members.domain import Member, MemberStatus
from services.members.personal import Profile, search_key


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member as the API shows it: the aggregate's facts plus what the profile store holds."""

    member: Member
    profile: Profile | None = None
    external_ref: str | None = None


MEMBER_COLUMNS = (
    "l.listed, l.id::text AS id, l.community_id, l.channel, l.status,"
    " l.invited_by::text AS invited_by, l.external_ref_hash, l.joined_at, l.left_at, l.roles,"
    " l.version, p.member_id IS NOT NULL AS has_profile, p.display_name, p.email, p.handles,"
    " p.city, p.interests, p.external_ref"
)
MEMBER_FROM = "member_list l LEFT JOIN member_profile p ON p.member_id = l.id"


async def ref_key(conn: AsyncConnection) -> str:
    return str(await conn.scalar(text("SELECT key FROM ref_hash_key")))


def _member_params(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "community_id": member.community_id,
        "channel": member.channel,
        "status": member.status.value,
        "invited_by": member.invited_by,
        "external_ref_hash": member.external_ref_hash,
        "joined_at": member.joined_at,
        "left_at": member.left_at,
        "roles": sorted(member.roles),
        "version": member.version,
    }


def new_member_writes(
    member: Member, profile: Profile, external_ref: str | None
) -> tuple[str, dict[str, Any]]:
    """A new member's list and profile rows, as the `WITH` items of the join's one statement
    (`EventStore.append_if_written`): `written` returns a row only when the rows went in. The
    community's unique (channel, external reference) index decides: for a person it already
    knows nothing is written, so two racing joins of one person create one member."""
    writes = (
        "listed AS (INSERT INTO member_list (id, community_id, channel, status,"
        " invited_by, external_ref_hash, joined_at, left_at, roles, version)"
        " VALUES (:id, :community_id, :channel, :status, :invited_by, :external_ref_hash,"
        " :joined_at, :left_at, :roles, :version)"
        " ON CONFLICT (community_id, channel, external_ref_hash)"
        " WHERE external_ref_hash IS NOT NULL DO NOTHING RETURNING id),"
        " written AS (INSERT INTO member_profile (member_id, community_id, display_name, email,"
        " handles, city, interests, external_ref, name_key, email_key) SELECT id,"
        " :community_id, :display_name, :email, CAST(:handles AS jsonb), :city, :interests,"
        " :external_ref, :name_key, :email_key FROM listed RETURNING member_id)"
    )
    params = {**_member_params(member), **_profile_params(profile), "external_ref": external_ref}
    return writes, params


def _profile_params(profile: Profile) -> dict[str, Any]:
    return {
        "display_name": profile.display_name,
        "email": profile.email,
        "handles": json.dumps(dict(profile.handles)),
        "city": profile.city,
        "interests": list(profile.interests),
        "name_key": search_key(profile.display_name),
        "email_key": search_key(profile.email),
    }


async def save(conn: AsyncConnection, member: Member) -> None:
    await conn.execute(
        text(
            "UPDATE member_list SET status = :status, left_at = :left_at, roles = :roles,"
            " external_ref_hash = :external_ref_hash, version = :version WHERE id = :id"
        ),
        {key: value for key, value in _member_params(member).items()
         if key in {"id", "status", "left_at", "roles", "external_ref_hash", "version"}},
    )


async def save_profile(
    conn: AsyncConnection, member: Member, profile: Profile, external_ref: str | None
) -> None:
    await conn.execute(
        text(
            "INSERT INTO member_profile (member_id, community_id, display_name, email, handles,"
            " city, interests, external_ref, name_key, email_key) VALUES (:id, :c,"
            " :display_name, :email, CAST(:handles AS jsonb), :city, :interests, :external_ref,"
            " :name_key, :email_key)"
            " ON CONFLICT (member_id) DO UPDATE SET display_name = excluded.display_name,"
            " email = excluded.email, handles = excluded.handles, city = excluded.city,"
            " interests = excluded.interests, name_key = excluded.name_key,"
            " email_key = excluded.email_key"
        ),
        {"id": member.id, "c": member.community_id, **_profile_params(profile),
         "external_ref": external_ref},
    )


async def forget(conn: AsyncConnection, member: Member) -> None:
    """Erasure in the read models: the profile row goes, and the list keeps no personal column."""
    await conn.execute(
        text("DELETE FROM member_profile WHERE member_id = CAST(:id AS uuid)"), {"id": member.id}
    )
    await save(conn, member)


def to_view(row: Any) -> MemberView:
    member = Member(
        id=row.id,
        community_id=row.community_id,
        channel=row.channel,
        status=MemberStatus(row.status),
        joined_at=row.joined_at,
        invited_by=row.invited_by,
        external_ref_hash=row.external_ref_hash,
        left_at=row.left_at,
        roles=frozenset(row.roles),
        version=row.version,
    )
    if not row.has_profile:
        return MemberView(member)
    handles = row.handles if isinstance(row.handles, dict) else json.loads(row.handles)
    profile = Profile(
        display_name=row.display_name,
        email=row.email,
        handles=handles,
        city=row.city,
        interests=tuple(row.interests),
    )
    return MemberView(member, profile, row.external_ref)


async def get(
    conn: AsyncConnection, community_id: str, member_id: str, *, for_update: bool = False
) -> MemberView | None:
    lock = " FOR UPDATE OF l" if for_update else ""
    row = (
        await conn.execute(
            text(
                f"SELECT {MEMBER_COLUMNS} FROM {MEMBER_FROM}"
                f" WHERE l.community_id = :c AND l.id = CAST(:id AS uuid){lock}"
            ),
            {"c": community_id, "id": member_id},
        )
    ).first()
    return to_view(row) if row else None


async def find_by_ref(
    conn: AsyncConnection, community_id: str, channel: str, ref_hash: str
) -> MemberView | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {MEMBER_COLUMNS} FROM {MEMBER_FROM} WHERE l.community_id = :c"
                " AND l.channel = :channel AND l.external_ref_hash = :h"
            ),
            {"c": community_id, "channel": channel, "h": ref_hash},
        )
    ).first()
    return to_view(row) if row else None
