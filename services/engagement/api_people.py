"""HTTP routes for what passes between people and the team: feedback, introductions, thanks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from gatherly.envelope import utc_now
from gatherly.web import (
    Community,
    CommunityPath,
    CustomChannels,
    Problem,
    cursor_position,
    decode_cursor,
    encode_cursor,
    parse_if_match,
)
from services.engagement import people_views
from services.engagement.deps import Handlers
from services.engagement.feedback import FeedbackStatus
from services.engagement.handlers import AdvanceFeedback, Introduce, SubmitFeedback, Thank
from services.engagement.people_views import QueuePosition
from services.engagement.schemas import (
    FeedbackAnswer,
    FeedbackCreate,
    FeedbackPage,
    FeedbackPublic,
    FeedbackStep,
    IntroductionCreate,
    RecordPage,
    ThanksCreate,
    feedback_public,
    optional_id,
)

router = APIRouter(prefix="/v1/communities/{community_id}", tags=["engagement"])
IfMatch = Annotated[str | None, Header()]


@router.post("/feedback", status_code=201, response_model=FeedbackPublic)
async def submit_feedback(
    community_id: CommunityPath, body: FeedbackCreate, response: Response, community: Community,
    handlers: Handlers, channels: CustomChannels,
) -> FeedbackPublic:
    entry = await handlers.submit_feedback(SubmitFeedback(
        community_id=community, member_id=str(body.member_id), about_kind=body.about_kind,
        about_id=optional_id(body.about_id), rating=body.rating, channel=body.channel,
        body=body.text, submitted_at=body.submitted_at or utc_now(), custom_channels=channels,
    ))
    response.headers["Location"] = f"/v1/communities/{community}/feedback/{entry.feedback.id}"
    response.headers["ETag"] = f'"{entry.feedback.version}"'
    return feedback_public(entry)


@router.post("/feedback/{feedback_id}/answer", response_model=FeedbackPublic)
async def answer_feedback(
    community_id: CommunityPath, feedback_id: uuid.UUID, response: Response,
    community: Community, handlers: Handlers, body: FeedbackAnswer | None = None,
    if_match: IfMatch = None,
) -> FeedbackPublic:
    body = body or FeedbackAnswer()
    entry = await handlers.answer_feedback(AdvanceFeedback(
        community_id=community, feedback_id=str(feedback_id), at=body.at or utc_now(),
        by_member=optional_id(body.by_member), answer=body.answer,
        expected_version=parse_if_match(if_match),
    ))
    response.headers["ETag"] = f'"{entry.feedback.version}"'
    return feedback_public(entry)


@router.post("/feedback/{feedback_id}/resolve", response_model=FeedbackPublic)
async def resolve_feedback(
    community_id: CommunityPath, feedback_id: uuid.UUID, response: Response,
    community: Community, handlers: Handlers, body: FeedbackStep | None = None,
    if_match: IfMatch = None,
) -> FeedbackPublic:
    body = body or FeedbackStep()
    entry = await handlers.resolve_feedback(AdvanceFeedback(
        community_id=community, feedback_id=str(feedback_id), at=body.at or utc_now(),
        by_member=optional_id(body.by_member), expected_version=parse_if_match(if_match),
    ))
    response.headers["ETag"] = f'"{entry.feedback.version}"'
    return feedback_public(entry)


@router.get("/feedback/{feedback_id}", response_model=FeedbackPublic)
async def show_feedback(
    community_id: CommunityPath, feedback_id: uuid.UUID, request: Request, response: Response,
    community: Community,
) -> FeedbackPublic:
    async with request.app.state.engine.connect() as conn:
        entry = await people_views.get_feedback(conn, community, str(feedback_id))
    if entry is None:
        raise Problem(404, "Not Found", f"no feedback {feedback_id}")
    response.headers["ETag"] = f'"{entry.feedback.version}"'
    return feedback_public(entry)


@router.get("/feedback", response_model=FeedbackPage)
async def list_feedback(
    community_id: CommunityPath, request: Request, community: Community,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
    status: Literal["submitted", "answered", "resolved"] | None = None,
    submitted_before: datetime | None = None,
) -> FeedbackPage:
    """Oldest unanswered first, then answered, then resolved; each by age. Feedback that changes
    status while a client pages moves down the queue and may come again; with `status` the
    order is by age alone and stable."""
    after = _queue_position(cursor) if cursor else None
    async with request.app.state.engine.connect() as conn:
        entries, last = await people_views.feedback_queue(
            conn, community, after=after, limit=limit,
            status=FeedbackStatus(status) if status else None, submitted_before=submitted_before)
    next_cursor = encode_cursor(
        {"rank": last.rank, "at": last.submitted_at.isoformat(), "id": last.id}
    ) if last else None
    return FeedbackPage(items=[feedback_public(e) for e in entries], next_cursor=next_cursor)


@router.post("/introductions", status_code=201)
async def introduce(
    community_id: CommunityPath, body: IntroductionCreate, response: Response,
    community: Community, handlers: Handlers,
) -> dict[str, Any]:
    record = await handlers.introduce(Introduce(
        community_id=community, member_a=str(body.member_a), member_b=str(body.member_b),
        by_member=str(body.by_member), at=body.at or utc_now(),
    ))
    response.headers["Location"] = f"/v1/communities/{community}/introductions/{record['id']}"
    return record


@router.get("/introductions", response_model=RecordPage)
async def list_introductions(
    community_id: CommunityPath, request: Request, community: Community,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
    member_id: uuid.UUID | None = None,
) -> RecordPage:
    return await _records(request, "introductions", community, limit, cursor, member_id)


@router.post("/thanks", status_code=201)
async def thank(
    community_id: CommunityPath, body: ThanksCreate, response: Response, community: Community,
    handlers: Handlers,
) -> dict[str, Any]:
    record = await handlers.thank(Thank(
        community_id=community, to_member=str(body.to_member), at=body.at or utc_now(),
        by_member=optional_id(body.by_member), reason=body.reason, about_kind=body.about_kind,
        about_id=optional_id(body.about_id),
    ))
    response.headers["Location"] = f"/v1/communities/{community}/thanks/{record['id']}"
    return record


@router.get("/thanks", response_model=RecordPage)
async def list_thanks(
    community_id: CommunityPath, request: Request, community: Community,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
    member_id: uuid.UUID | None = None,
) -> RecordPage:
    return await _records(request, "thanks", community, limit, cursor, member_id)


async def _records(
    request: Request, table: str, community: str, limit: int, cursor: str | None,
    member_id: uuid.UUID | None,
) -> RecordPage:
    after = cursor_position(cursor)
    async with request.app.state.engine.connect() as conn:
        items, next_after = await people_views.page_of(
            conn, table, community, after=after, limit=limit, member_id=optional_id(member_id))
    return RecordPage(items=items,
                      next_cursor=encode_cursor({"after": next_after}) if next_after else None)


def _queue_position(cursor: str) -> QueuePosition:
    values = decode_cursor(cursor)
    try:
        return QueuePosition(int(values["rank"]), datetime.fromisoformat(values["at"]),
                             str(uuid.UUID(values["id"])))
    except (KeyError, TypeError, ValueError) as error:
        raise Problem(400, "Bad cursor", "the cursor is not one this API issued") from error
