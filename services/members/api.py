"""HTTP routes for members: translate requests into commands and results into responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gatherly.envelope import utc_now
from gatherly.web import Problem, community_scope, decode_cursor, encode_cursor
from services.members import views
from services.members.domain import Member, MemberStatus
from services.members.handlers import JoinMember, LeaveMember, MemberHandlers

COMMUNITY_ID = r"^[A-Za-z0-9_-]{1,64}$"

router = APIRouter(prefix="/v1/communities/{community_id}/members", tags=["members"])


class MemberJoin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=2, max_length=32, examples=["telegram"])
    invited_by: uuid.UUID | None = Field(default=None, description="the referring member")
    external_ref: str | None = Field(default=None, min_length=1, max_length=200)
    joined_at: AwareDatetime | None = Field(
        default=None, description="when the member joined (defaults to now); ISO 8601 with offset"
    )


class MemberLeave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)
    left_at: AwareDatetime | None = None


class MemberPublic(BaseModel):
    id: str
    community_id: str
    channel: str
    status: MemberStatus
    invited_by: str | None
    external_ref: str | None
    joined_at: datetime
    left_at: datetime | None
    version: int


class MemberPage(BaseModel):
    items: list[MemberPublic]
    next_cursor: str | None


def public(member: Member) -> MemberPublic:
    return MemberPublic(
        id=member.id,
        community_id=member.community_id,
        channel=member.channel,
        status=member.status,
        invited_by=member.invited_by,
        external_ref=member.external_ref,
        joined_at=member.joined_at,
        left_at=member.left_at,
        version=member.version,
    )


def handlers(request: Request) -> MemberHandlers:
    handlers: MemberHandlers = request.app.state.handlers
    return handlers


Community = Annotated[str, Depends(community_scope)]
CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID)]
Handlers = Annotated[MemberHandlers, Depends(handlers)]


def parse_if_match(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError as error:
        raise Problem(400, "Bad If-Match", "If-Match must be an ETag this API issued") from error


@router.post("", status_code=201, response_model=MemberPublic)
async def record_join(
    community_id: CommunityPath,
    body: MemberJoin,
    response: Response,
    community: Community,
    members: Handlers,
) -> MemberPublic:
    member = await members.join(
        JoinMember(
            community_id=community,
            channel=body.channel,
            joined_at=body.joined_at or utc_now(),
            invited_by=str(body.invited_by) if body.invited_by else None,
            external_ref=body.external_ref,
        )
    )
    response.headers["Location"] = f"/v1/communities/{community}/members/{member.id}"
    response.headers["ETag"] = f'"{member.version}"'
    return public(member)


@router.post("/{member_id}/leave", response_model=MemberPublic)
async def record_leave(
    community_id: CommunityPath,
    member_id: uuid.UUID,
    response: Response,
    community: Community,
    members: Handlers,
    body: MemberLeave | None = None,
    if_match: Annotated[str | None, Header()] = None,
) -> MemberPublic:
    body = body or MemberLeave()
    member = await members.leave(
        LeaveMember(
            community_id=community,
            member_id=str(member_id),
            left_at=body.left_at or utc_now(),
            reason=body.reason,
            expected_version=parse_if_match(if_match),
        )
    )
    response.headers["ETag"] = f'"{member.version}"'
    return public(member)


@router.get("/{member_id}", response_model=MemberPublic)
async def show_member(
    community_id: CommunityPath,
    member_id: uuid.UUID,
    request: Request,
    response: Response,
    community: Community,
) -> MemberPublic:
    async with request.app.state.engine.connect() as conn:
        member = await views.get(conn, community, str(member_id))
    if member is None:
        raise Problem(404, "Not Found", f"no member {member_id}")
    response.headers["ETag"] = f'"{member.version}"'
    return public(member)


@router.get("", response_model=MemberPage)
async def list_members(
    community_id: CommunityPath,
    request: Request,
    community: Community,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    status: Literal["active", "left"] | None = None,
) -> MemberPage:
    after = int(decode_cursor(cursor).get("after", 0)) if cursor else 0
    async with request.app.state.engine.connect() as conn:
        members, next_after = await views.page(
            conn,
            community,
            after=after,
            limit=limit,
            status=MemberStatus(status) if status else None,
        )
    return MemberPage(
        items=[public(m) for m in members],
        next_cursor=encode_cursor({"after": next_after}) if next_after else None,
    )
