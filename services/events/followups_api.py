"""HTTP routes for follow-up duties: assign and complete them per event, list them across events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.envelope import utc_now
from gatherly.web import Community, CommunityPath, Problem, decode_cursor, encode_cursor
from services.events import domain, listings
from services.events.api import Engine, Handlers, IfMatch, target
from services.events.schemas import (
    FollowupAssign,
    FollowupDone,
    FollowupPage,
    FollowupPublic,
    followup_public,
)

router = APIRouter(prefix="/v1/communities/{community_id}", tags=["follow-ups"])


async def duty(db: AsyncEngine, event_id: str, task: str) -> FollowupPublic:
    async with db.connect() as conn:
        rows = await listings.followups_of(conn, event_id)
    [row] = [r for r in rows if r.task == task]
    return followup_public(row, utc_now())


@router.post("/events/{event_id}/followups/{task}/assign", response_model=FollowupPublic)
async def assign_followup(
    community_id: CommunityPath, event_id: uuid.UUID, task: str, community: Community,
    events: Handlers, db: Engine, body: FollowupAssign | None = None, if_match: IfMatch = None,
) -> FollowupPublic:
    """Give a duty to a member (the storyteller writes, the historian records…) and a due date."""
    body = body or FollowupAssign()
    assignee = str(body.assignee) if body.assignee else None
    await events.decide(target(community, event_id, if_match), lambda e: domain.assign_followup(
        e, task=task, at=utc_now(), assignee=assignee, due_at=body.due_at))
    return await duty(db, str(event_id), task)


@router.post("/events/{event_id}/followups/{task}/done", response_model=FollowupPublic)
async def complete_followup(
    community_id: CommunityPath, event_id: uuid.UUID, task: str, community: Community,
    events: Handlers, db: Engine, body: FollowupDone | None = None, if_match: IfMatch = None,
) -> FollowupPublic:
    body = body or FollowupDone()
    by_member = str(body.by_member) if body.by_member else None
    at = body.done_at or utc_now()
    await events.decide(target(community, event_id, if_match), lambda e: domain.complete_followup(
        e, task=task, at=at, by_member=by_member))
    return await duty(db, str(event_id), task)


@router.get("/followups", response_model=FollowupPage)
async def list_followups(
    community_id: CommunityPath, community: Community, db: Engine,
    overdue: bool = False, done: bool | None = None, assignee: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
) -> FollowupPage:
    """Duties across the community's events by due date; `overdue=true`: open and past due."""
    after = None
    if cursor:
        position = decode_cursor(cursor)
        try:
            after = (datetime.fromisoformat(position["due"]), str(uuid.UUID(position["e"])),
                     str(position["t"]))
        except (KeyError, TypeError, ValueError) as error:
            raise Problem(400, "Bad cursor", "the cursor is not one this API issued") from error
    now = utc_now()
    async with db.connect() as conn:
        rows, last = await listings.followups(
            conn, community, overdue_at=now if overdue else None, done=done,
            assignee=str(assignee) if assignee else None, after=after, limit=limit)
    return FollowupPage(
        items=[followup_public(r, now) for r in rows],
        next_cursor=encode_cursor({"due": last[0].isoformat(), "e": last[1], "t": last[2]})
        if last else None,
    )
