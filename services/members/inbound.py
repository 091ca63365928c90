"""Members' share of an inbound delivery (internal: the inbound service posts it over loopback).

`POST /internal/inbound/{source}` takes the delivery's member commands and records them in one
transaction with the part's receipt (gatherly/inbound.py): a replay records nothing and answers
as the first time did. A platform reports what is so, so a join of a known member, a leave of a
member who has left, and a member seen for the first time are all normal:

- `join` with an external reference already known answers that member (a rejoin if they left);
- `leave` of a member known only by a platform id first joins them (created on first sight);
- `ensure` joins a member named by a platform id in another service's fact, if unknown.

The answer maps every platform reference to its member id, so the inbound service can name the
members in the events' and engagement's parts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import utc_now
from gatherly.inbound import InboundReceipts, OneTransaction, Receipt
from gatherly.web import Moment, Problem
from services.members import views
from services.members.domain import MemberStatus
from services.members.handlers import (
    JoinMember,
    LeaveMember,
    MemberHandlers,
    MemberNotFound,
    RejoinMember,
)
from services.members.views import MemberView

PART = "members"
router = APIRouter(include_in_schema=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberRef(Strict):
    channel: str = Field(min_length=2, max_length=32)
    external_ref: str = Field(min_length=1, max_length=200)

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.external_ref}"


class Join(Strict):
    op: Literal["join"]
    channel: str = Field(min_length=2, max_length=32)
    external_ref: str | None = Field(default=None, min_length=1, max_length=200)
    invited_by: uuid.UUID | None = None
    joined_at: Moment | None = None
    display_name: str | None = Field(default=None, max_length=200)


class Leave(Strict):
    op: Literal["leave"]
    member_id: uuid.UUID | None = None
    member_ref: MemberRef | None = None
    left_at: Moment | None = None
    reason: str | None = Field(default=None, max_length=500)


class Ensure(Strict):
    op: Literal["ensure"]
    member_ref: MemberRef
    at: Moment | None = None


Command = Annotated[Join | Leave | Ensure, Field(discriminator="op")]


class Part(Strict):
    community_id: str = Field(min_length=1, max_length=100)
    webhook_id: str = Field(min_length=1, max_length=255)
    commands: list[Command] = Field(min_length=1, max_length=1000)


@router.post("/internal/inbound/{source}")
async def record_part(source: str, part: Part, request: Request) -> dict[str, Any]:
    shared: MemberHandlers = request.app.state.handlers
    receipts: InboundReceipts = request.app.state.inbound_receipts

    async def record(conn: AsyncConnection) -> dict[str, Any]:
        handlers = MemberHandlers(cast(AsyncEngine, OneTransaction(conn)), shared.store,
                                  shared_transaction=True)
        return await _record(conn, handlers, part)

    receipt = Receipt(part.community_id, source, part.webhook_id, PART)
    return await receipts.record_once(shared.engine, receipt, record)


async def _record(
    conn: AsyncConnection, handlers: MemberHandlers, part: Part
) -> dict[str, Any]:
    members: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    for command in part.commands:
        if isinstance(command, Join):
            view, recorded = await _join(handlers, part.community_id, command)
        elif isinstance(command, Leave):
            view, recorded = await _leave(conn, handlers, part.community_id, command)
        else:
            view, recorded = await _first_sight(
                handlers, part.community_id, command.member_ref, command.at or utc_now()
            )
        ref = _ref_of(command)
        if ref is not None:
            members[ref.key] = view.member.id
        results.append({"op": command.op, "member_id": view.member.id, "recorded": recorded})
    return {"members": members, "results": results,
            "recorded": sum(1 for r in results if r["recorded"])}


def _ref_of(command: Join | Leave | Ensure) -> MemberRef | None:
    if isinstance(command, Join):
        if command.external_ref is None:
            return None
        return MemberRef(channel=command.channel, external_ref=command.external_ref)
    return command.member_ref


async def _join(
    handlers: MemberHandlers, community_id: str, command: Join
) -> tuple[MemberView, bool]:
    at = command.joined_at or utc_now()
    profile = {"display_name": command.display_name} if command.display_name else {}
    view, created = await handlers.join(JoinMember(
        community_id=community_id, channel=command.channel, joined_at=at,
        invited_by=str(command.invited_by) if command.invited_by else None,
        external_ref=command.external_ref, profile=profile,
    ))
    if created or not _may_rejoin(view, at):
        return view, created
    rejoined = await handlers.rejoin(RejoinMember(
        community_id=community_id, member_id=view.member.id, channel=command.channel,
        rejoined_at=at,
    ))
    return rejoined, True


def _may_rejoin(view: MemberView, at: datetime) -> bool:
    """A member who left comes back; an older join reported late changes nothing."""
    member = view.member
    return member.status is MemberStatus.LEFT and (member.left_at is None or at >= member.left_at)


async def _leave(
    conn: AsyncConnection, handlers: MemberHandlers, community_id: str, command: Leave
) -> tuple[MemberView, bool]:
    at = command.left_at or utc_now()
    if command.member_ref is not None:
        view, _ = await _first_sight(handlers, community_id, command.member_ref, at)
        member_id = view.member.id
    elif command.member_id is not None:
        member_id = str(command.member_id)
    else:
        raise Problem(422, "Invalid command", "a leave names member_id or member_ref",
                      field="member_id")
    listed = await views.get(conn, community_id, member_id)
    if listed is None:
        raise MemberNotFound(member_id)
    if listed.member.status is MemberStatus.LEFT:
        return listed, False
    left = await handlers.leave(LeaveMember(
        community_id=community_id, member_id=member_id, left_at=at, reason=command.reason,
    ))
    return left, True


async def _first_sight(
    handlers: MemberHandlers, community_id: str, ref: MemberRef, at: datetime
) -> tuple[MemberView, bool]:
    """The member with this platform id, joined now through that platform if never seen."""
    return await handlers.join(JoinMember(
        community_id=community_id, channel=ref.channel, joined_at=at,
        external_ref=ref.external_ref,
    ))
