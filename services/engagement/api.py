"""HTTP routes for content, views, counter snapshots, reactions, reaction counts and the batch
path."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from gatherly.envelope import utc_now
from gatherly.web import (
    Community,
    CommunityPath,
    CustomChannels,
    Problem,
    cursor_position,
    encode_cursor,
    parse_if_match,
)
from services.engagement import batch, views
from services.engagement.batch import AddReaction, Outcome, RemoveReaction, View
from services.engagement.batch_http import aware_moment, batch_answer, parse_batch
from services.engagement.deps import Handlers, Ingest, problem_of
from services.engagement.handlers import ArchiveContent, DescribeContent, PublishContent
from services.engagement.ingest import CountReactions, CountViews
from services.engagement.schemas import (
    ContentArchive,
    ContentCreate,
    ContentPage,
    ContentPublic,
    ContentUpdate,
    CounterSnapshotCreate,
    ReactionCountCreate,
    ReactionCreate,
    ReactionPublic,
    ViewCreate,
    content_public,
    optional_id,
    reaction_public,
)

router = APIRouter(prefix="/v1/communities/{community_id}", tags=["engagement"])


@router.post("/content", status_code=201, response_model=ContentPublic)
async def publish_content(
    community_id: CommunityPath, body: ContentCreate, response: Response, community: Community,
    handlers: Handlers, channels: CustomChannels,
) -> ContentPublic:
    item = await handlers.publish(PublishContent(
        community_id=community, channel=body.channel, kind=body.kind,
        published_at=body.published_at or utc_now(), author_id=optional_id(body.author_id),
        title=body.title, url=body.url, custom_channels=channels,
    ))
    response.headers["Location"] = f"/v1/communities/{community}/content/{item.id}"
    response.headers["ETag"] = f'"{item.version}"'
    return content_public(item)


@router.get("/content/{content_id}", response_model=ContentPublic)
async def show_content(
    community_id: CommunityPath, content_id: uuid.UUID, request: Request, response: Response,
    community: Community,
) -> ContentPublic:
    async with request.app.state.engine.connect() as conn:
        item = await views.get_content(conn, community, str(content_id))
        if item is None:
            raise Problem(404, "Not Found", f"no content item {content_id}")
        stats = await views.content_stats(conn, item.id)
    response.headers["ETag"] = f'"{item.version}"'
    return content_public(item, stats)


@router.patch("/content/{content_id}", response_model=ContentPublic)
async def describe_content(
    community_id: CommunityPath, content_id: uuid.UUID, body: ContentUpdate, response: Response,
    community: Community, handlers: Handlers, if_match: Annotated[str | None, Header()] = None,
) -> ContentPublic:
    item = await handlers.describe(DescribeContent(
        community_id=community, content_id=str(content_id),
        changes=body.model_dump(exclude_unset=True), expected_version=parse_if_match(if_match),
    ))
    response.headers["ETag"] = f'"{item.version}"'
    return content_public(item)


@router.post("/content/{content_id}/archive", response_model=ContentPublic)
async def archive_content(
    community_id: CommunityPath, content_id: uuid.UUID, response: Response,
    community: Community, handlers: Handlers, body: ContentArchive | None = None,
    if_match: Annotated[str | None, Header()] = None,
) -> ContentPublic:
    item = await handlers.archive(ArchiveContent(
        community_id=community, content_id=str(content_id),
        archived_at=(body.archived_at if body else None) or utc_now(),
        expected_version=parse_if_match(if_match),
    ))
    response.headers["ETag"] = f'"{item.version}"'
    return content_public(item)


@router.get("/content", response_model=ContentPage)
async def list_content(
    community_id: CommunityPath, request: Request, community: Community,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
    status: Literal["active", "archived", "all"] = "active",
    channel: str | None = None, kind: str | None = None,
) -> ContentPage:
    after = cursor_position(cursor)
    archived = {"active": False, "archived": True, "all": None}[status]
    async with request.app.state.engine.connect() as conn:
        items, next_after = await views.content_page(
            conn, community, after=after, limit=limit, archived=archived, channel=channel,
            kind=kind)
    return ContentPage(items=[content_public(i) for i in items],
                       next_cursor=encode_cursor({"after": next_after}) if next_after else None)


@router.post("/views", status_code=201)
async def record_view(
    community_id: CommunityPath, body: ViewCreate, community: Community, ingest: Ingest,
    channels: CustomChannels,
) -> dict[str, Any]:
    view = View(content_id=str(body.content_id), viewed_at=body.viewed_at or utc_now(),
                count=body.count, channel=body.channel, member_id=optional_id(body.member_id))
    outcome = _only(await ingest.ingest(community, [view], channels))
    return {"id": outcome.id, **body.model_dump(mode="json"), "viewed_at": view.viewed_at}


@router.post("/views/counters", response_model=None)
async def record_counter_snapshot(
    community_id: CommunityPath, body: CounterSnapshotCreate, response: Response,
    community: Community, ingest: Ingest, channels: CustomChannels,
) -> dict[str, Any]:
    """A channel's counter as of a moment. The same snapshot again: 200, nothing recorded; an
    older one (or another total for the same moment): 409, nothing recorded."""
    snapshot, recorded = await ingest.count_views(CountViews(
        community_id=community, content_id=str(body.content_id), counter=body.counter,
        total=body.total, as_of=body.as_of, channel=body.channel, custom_channels=channels,
    ))
    response.status_code = 201 if recorded else 200
    return {"id": snapshot.id, "content_id": snapshot.content_id, "counter": snapshot.counter,
            "total": snapshot.total, "as_of": snapshot.as_of, "version": snapshot.version}


@router.post("/content/{content_id}/reaction-counts", response_model=None)
async def record_reaction_count(
    community_id: CommunityPath, content_id: uuid.UUID, body: ReactionCountCreate,
    response: Response, community: Community, ingest: Ingest, channels: CustomChannels,
) -> dict[str, Any]:
    """A platform's anonymous count of one reaction kind as of a moment (no member). The same
    snapshot again: 200, nothing recorded; an older one (or another total for the same moment):
    409, nothing recorded."""
    count, recorded = await ingest.count_reactions(CountReactions(
        community_id=community, content_id=str(content_id), counter=body.counter,
        kind=body.kind, total=body.total, as_of=body.as_of, channel=body.channel,
        custom_channels=channels,
    ))
    response.status_code = 201 if recorded else 200
    return {"id": count.id, "content_id": count.content_id, "counter": count.counter,
            "kind": count.kind, "total": count.total, "as_of": count.as_of,
            "version": count.version}


@router.post("/reactions", status_code=201, response_model=ReactionPublic)
async def add_reaction(
    community_id: CommunityPath, body: ReactionCreate, response: Response, community: Community,
    ingest: Ingest, channels: CustomChannels,
) -> ReactionPublic:
    """A member's second identical reaction answers 200 with the existing one and records
    nothing."""
    outcome = _only(await ingest.ingest(community, [AddReaction(
        content_id=str(body.content_id), member_id=str(body.member_id), kind=body.kind,
        at=body.at or utc_now(), channel=body.channel,
    )], channels))
    response.status_code = outcome.status
    assert outcome.reaction is not None
    return reaction_public(outcome.reaction)


@router.get("/reactions/{reaction_id}", response_model=ReactionPublic)
async def show_reaction(
    community_id: CommunityPath, reaction_id: uuid.UUID, request: Request, community: Community,
) -> ReactionPublic:
    async with request.app.state.engine.connect() as conn:
        reaction = await views.get_reaction(conn, community, str(reaction_id))
    if reaction is None:
        raise Problem(404, "Not Found", f"no reaction {reaction_id}")
    return reaction_public(reaction)


@router.delete("/reactions/{reaction_id}", response_model=ReactionPublic)
async def remove_reaction(
    community_id: CommunityPath, reaction_id: uuid.UUID, request: Request,
    community: Community, ingest: Ingest,
    at: Annotated[str | None, Query(description="when it was withdrawn (ISO 8601)")] = None,
) -> ReactionPublic:
    """Removing a reaction that is not there is a 404, and records nothing."""
    async with request.app.state.engine.connect() as conn:
        reaction = await views.get_reaction(conn, community, str(reaction_id))
    if reaction is None or not reaction.active:
        raise Problem(404, "Not Found", f"no reaction {reaction_id} to remove")
    outcome = _only(await ingest.ingest(community, [RemoveReaction(
        content_id=reaction.content_id, member_id=reaction.member_id, kind=reaction.kind,
        at=_moment(at),
    )]))
    assert outcome.reaction is not None
    return reaction_public(outcome.reaction)


@router.post("/engagement/batch", response_class=JSONResponse)
async def ingest_batch(
    community_id: CommunityPath, request: Request, community: Community, ingest: Ingest,
    channels: CustomChannels,
) -> Response:
    """Up to 1,000 views and reactions in one transaction, answered per item. An invalid
    envelope (not JSON, no `items` list, over the limit) is refused whole: nothing written."""
    parsed = parse_batch(await request.body(), batch.MAX_ITEMS)
    facts = [item for item in parsed if not isinstance(item, dict)]
    outcomes = await ingest.ingest(community, facts, channels) if facts else []
    return Response(batch_answer(parsed, outcomes), media_type="application/json")


def _only(outcomes: list[Outcome]) -> Outcome:
    (outcome,) = outcomes
    if outcome.error is not None:
        raise problem_of(outcome.error)
    return outcome


def _moment(value: str | None) -> datetime:
    return aware_moment(value, field="at") if value else utc_now()
