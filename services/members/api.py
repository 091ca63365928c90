"""HTTP routes for members: translate requests into commands and results into responses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from gatherly import channels
from gatherly.envelope import utc_now
from gatherly.problem_docs import documented_problem
from gatherly.web import (
    Community,
    CommunityPath,
    CustomChannels,
    Moment,
    Problem,
    community_scope,
    cursor_position,
    encode_cursor,
    parse_if_match,
)
from services.members import history, views
from services.members.domain import ROLES, MemberStatus
from services.members.handlers import (
    ChangeRole,
    EraseMember,
    JoinMember,
    LeaveMember,
    MemberHandlers,
    MemberNotFound,
    RejoinMember,
    UpdateProfile,
)
from services.members.schemas import (
    HistoryItem,
    MemberHistory,
    MemberJoin,
    MemberLeave,
    MemberPage,
    MemberPublic,
    MemberRejoin,
    ProfileFields,
    public,
)
from services.members.search import MemberFilter, search
from services.members.views import MemberView

router = APIRouter(prefix="/v1/communities/{community_id}/members", tags=["members"])


async def handlers(request: Request) -> MemberHandlers:  # async: no worker-thread hop
    handlers: MemberHandlers = request.app.state.handlers
    return handlers


Handlers = Annotated[MemberHandlers, Depends(handlers)]


IfMatch = Annotated[str | None, Header()]
Role = Annotated[str, Path(description=f"one of {', '.join(ROLES)}")]


@dataclass(frozen=True, slots=True)
class Joining:
    community: str
    members: MemberHandlers
    custom_channels: frozenset[str] | None


async def joining(request: Request, community_id: CommunityPath) -> Joining:
    """The join's community scope, handlers and custom channels in one dependency, by the same
    rules (`community_scope`, `community_channels` of gatherly.web). The join is the hottest
    route, and FastAPI spent more on solving four dependencies and their three declared headers
    (~15% of the route's CPU) than the checks cost."""
    headers = request.headers
    community = await community_scope(
        community_id, headers.get("x-gatherly-community"), headers.get("x-gatherly-scopes")
    )
    custom = channels.custom_channels(headers.get(channels.HEADER))
    return Joining(community, request.app.state.handlers, custom)


def etag(view: MemberView) -> str:
    """The aggregate version, as `If-Match` gives it back."""
    return f'"{view.member.version}"'


def answer(view: MemberView, response: Response) -> MemberPublic:
    response.headers["ETag"] = etag(view)
    return public(view)


@router.post("", status_code=201, response_model=MemberPublic)
async def record_join(
    body: MemberJoin, context: Annotated[Joining, Depends(joining)]
) -> Response:
    """Record a join; a known (channel, external_ref) answers 200 with that member instead."""
    view, created = await context.members.join(
        JoinMember(
            community_id=context.community,
            channel=body.channel,
            joined_at=body.joined_at or utc_now(),
            invited_by=str(body.invited_by) if body.invited_by else None,
            external_ref=body.external_ref,
            profile=body.profile(),
            custom_channels=context.custom_channels,
        )
    )
    # The body serialised once, by the model it is documented with: returned as a model,
    # FastAPI would validate it against `response_model` again first.
    return Response(
        public(view).model_dump_json(), status_code=201 if created else 200,
        media_type="application/json",
        headers={"ETag": etag(view),
                 "Location": f"/v1/communities/{context.community}/members/{view.member.id}"},
    )


@router.post("/{member_id}/leave", response_model=MemberPublic)
async def record_leave(
    community_id: CommunityPath, member_id: uuid.UUID, response: Response, community: Community,
    members: Handlers, body: MemberLeave | None = None, if_match: IfMatch = None,
) -> MemberPublic:
    body = body or MemberLeave()
    command = LeaveMember(
        community_id=community, member_id=str(member_id), left_at=body.left_at or utc_now(),
        reason=body.reason, expected_version=parse_if_match(if_match),
    )
    return answer(await members.leave(command), response)


@router.post("/{member_id}/rejoin", response_model=MemberPublic)
async def record_rejoin(
    community_id: CommunityPath, member_id: uuid.UUID, body: MemberRejoin, response: Response,
    community: Community, members: Handlers, custom_channels: CustomChannels,
    if_match: IfMatch = None,
) -> MemberPublic:
    """A member who left comes back: same id, history kept."""
    command = RejoinMember(
        community_id=community, member_id=str(member_id), channel=body.channel,
        rejoined_at=body.rejoined_at or utc_now(), expected_version=parse_if_match(if_match),
        custom_channels=custom_channels,
    )
    return answer(await members.rejoin(command), response)


@router.patch("/{member_id}", response_model=MemberPublic,
              responses={428: documented_problem(428)})
async def update_profile(
    community_id: CommunityPath, member_id: uuid.UUID, body: ProfileFields, response: Response,
    community: Community, members: Handlers, custom_channels: CustomChannels,
    if_match: IfMatch = None,
) -> MemberPublic:
    """Change profile fields; `If-Match` with the member's ETag is required."""
    if if_match is None:
        raise Problem(428, "Precondition Required",
                      "If-Match: send the member's ETag to update the profile")
    command = UpdateProfile(
        community_id=community, member_id=str(member_id),
        changes=body.model_dump(exclude_unset=True), at=utc_now(),
        expected_version=parse_if_match(if_match),
        custom_channels=custom_channels,
    )
    return answer(await members.update_profile(command), response)


@router.put("/{member_id}/roles/{role}", response_model=MemberPublic)
async def assign_role(
    community_id: CommunityPath, member_id: uuid.UUID, role: Role, response: Response,
    community: Community, members: Handlers,
) -> MemberPublic:
    """Assign a role; assigning one the member holds records nothing."""
    command = ChangeRole(community, str(member_id), role, utc_now(), assign=True)
    return answer(await members.change_role(command), response)


@router.delete("/{member_id}/roles/{role}", response_model=MemberPublic)
async def remove_role(
    community_id: CommunityPath, member_id: uuid.UUID, role: Role, response: Response,
    community: Community, members: Handlers,
) -> MemberPublic:
    command = ChangeRole(community, str(member_id), role, utc_now(), assign=False)
    return answer(await members.change_role(command), response)


@router.post("/{member_id}/erase", response_model=MemberPublic)
async def erase_member(
    community_id: CommunityPath, member_id: uuid.UUID, response: Response, community: Community,
    members: Handlers,
) -> MemberPublic:
    """GDPR erasure: the profile goes; the log keeps ids and non-personal facts only."""
    command = EraseMember(community_id=community, member_id=str(member_id), at=utc_now())
    return answer(await members.erase(command), response)


@router.get("/{member_id}", response_model=MemberPublic)
async def show_member(
    community_id: CommunityPath, member_id: uuid.UUID, request: Request, response: Response,
    community: Community,
) -> MemberPublic:
    async with request.app.state.engine.connect() as conn:
        view = await views.get(conn, community, str(member_id))
    if view is None:
        raise Problem(404, "Not Found", f"no member {member_id}")
    return answer(view, response)


@router.get("/{member_id}/history", response_model=MemberHistory)
async def member_history(
    community_id: CommunityPath, member_id: uuid.UUID, community: Community, members: Handlers,
) -> MemberHistory:
    """The member's own events, newest first, each with a sentence a frontend can show."""
    async with members.engine.connect() as conn:
        events = await members.store.read_stream(conn, str(member_id))
    if not events or events[0].community_id != community:
        raise MemberNotFound(str(member_id))
    items = [
        HistoryItem(id=e.id, type=e.type, version=e.sequence, time=e.time, summary=words,
                    data=data)
        for e, words, data in history.newest_first(events)
    ]
    return MemberHistory(member_id=str(member_id), items=items)


@router.get("", response_model=MemberPage)
async def list_members(
    community_id: CommunityPath,
    request: Request,
    community: Community,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    status: Literal["active", "left", "erased"] | None = None,
    role: Annotated[Literal[ROLES] | None, Query()] = None,  # type: ignore[valid-type]
    channel: Annotated[str | None, Query(max_length=32)] = None,
    tag: Annotated[str | None, Query(max_length=40)] = None,
    joined_from: Moment | None = None,
    joined_to: Moment | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100,
                                   description="name or e-mail prefix, any case")] = None,
) -> MemberPage:
    """Search members in a stable order; `total` counts the matches on the first page."""
    after = cursor_position(cursor)
    where = MemberFilter(
        status=MemberStatus(status) if status else None, role=role, channel=channel, tag=tag,
        joined_from=joined_from, joined_to=joined_to, prefix=q,
    )
    async with request.app.state.engine.connect() as conn:
        found = await search(conn, community, where, after=after, limit=limit)
    return MemberPage(
        items=[public(v) for v in found.members],
        next_cursor=encode_cursor({"after": found.next_after}) if found.next_after else None,
        total=found.total,
    )
