"""Engagement's share of an inbound delivery (internal: the inbound service posts it over
loopback).

`POST /internal/inbound/{source}` takes the delivery's content, view, reaction and feedback
commands and records them, in order, in one transaction with the part's receipt
(gatherly/inbound.py): a replay records nothing and answers as the first time did; a refused
command leaves nothing of the part written.

A platform's post is named by its own reference (`content_ref`: channel + the platform's id of
the post); its content id is derived from the reference, so the same post is one item however
often it is reported. A platform reports what is so: a reaction on a post Gatherly never saw
published, or the removal of a reaction never recorded, records nothing and is listed as skipped.
So does a reaction count older than the one recorded (platforms deliver out of order; the public
API refuses it with 409), and a count of 0 for a kind never counted (a mapper reports every kind
it knows, so that a kind gone from a post drops to 0; nothing to record while none was seen).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import utc_now
from gatherly.inbound import InboundReceipts, OneTransaction, Receipt
from gatherly.telemetry import current_traceparent
from gatherly.web import Moment, Problem
from services.engagement import content, views
from services.engagement.batch import AddReaction, Fact, RemoveReaction, View
from services.engagement.domain import CONTENT_KINDS, NotFound, Stale, reaction_counter_id
from services.engagement.handlers import EngagementHandlers, SubmitFeedback
from services.engagement.ingest import CountReactions, IngestHandlers

PART = "engagement"
CONTENT_REFS = uuid.uuid5(uuid.NAMESPACE_URL, "https://gatherly.dev/inbound/content")
router = APIRouter(include_in_schema=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentRef(Strict):
    channel: str = Field(min_length=2, max_length=32)
    external_ref: str = Field(min_length=1, max_length=200)


class PublishContent(Strict):
    op: Literal["publish_content"]
    content_ref: ContentRef
    kind: str = Field(default="post", description=", ".join(CONTENT_KINDS))
    published_at: Moment | None = None
    author_id: uuid.UUID | None = None
    title: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)


class OnContent(Strict):
    """A fact about a content item: named by our id, or by the platform's reference."""

    content_id: uuid.UUID | None = None
    content_ref: ContentRef | None = None


class ViewContent(OnContent):
    op: Literal["view"]
    member_id: uuid.UUID | None = None
    count: int = Field(default=1, ge=1, le=1_000_000)
    channel: str | None = Field(default=None, min_length=2, max_length=32)
    viewed_at: Moment | None = None


class React(OnContent):
    op: Literal["add_reaction", "remove_reaction"]
    member_id: uuid.UUID
    kind: str = Field(min_length=2, max_length=32)
    channel: str | None = Field(default=None, min_length=2, max_length=32)
    at: Moment | None = None


class CountReactionsOf(OnContent):
    """A platform's anonymous count of one reaction kind on a post, as of a moment."""

    op: Literal["count_reactions"]
    counter: str = Field(min_length=2, max_length=32)
    kind: str = Field(min_length=2, max_length=32)
    total: int = Field(ge=0)
    as_of: Moment
    channel: str | None = Field(default=None, min_length=2, max_length=32)


class GiveFeedback(Strict):
    op: Literal["feedback"]
    member_id: uuid.UUID
    about_kind: Literal["event", "content", "community"]
    about_id: uuid.UUID | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    channel: str = Field(min_length=2, max_length=32)
    text: str = Field(min_length=1, max_length=10_000)
    submitted_at: Moment | None = None


Command = Annotated[PublishContent | ViewContent | React | CountReactionsOf | GiveFeedback,
                    Field(discriminator="op")]


class Part(Strict):
    community_id: str = Field(min_length=1, max_length=100)
    webhook_id: str = Field(min_length=1, max_length=255)
    commands: list[Command] = Field(min_length=1, max_length=1000)


def content_id_of(community_id: str, ref: ContentRef) -> str:
    """The content id a platform's post gets in this community: stable across deliveries."""
    return str(uuid.uuid5(CONTENT_REFS, f"{community_id}:{ref.channel}:{ref.external_ref}"))


@router.post("/internal/inbound/{source}")
async def record_part(source: str, part: Part, request: Request) -> dict[str, Any]:
    shared: EngagementHandlers = request.app.state.handlers
    receipts: InboundReceipts = request.app.state.inbound_receipts

    async def record(conn: AsyncConnection) -> dict[str, Any]:
        recorder = _Recorder(conn, shared, part.community_id)
        results = [await recorder.record(command) for command in part.commands]
        return {"results": results, "recorded": sum(1 for r in results if r["recorded"])}

    receipt = Receipt(part.community_id, source, part.webhook_id, PART)
    return await receipts.record_once(shared.engine, receipt, record)


class _Recorder:
    """The service's handlers, bound to the delivery's one transaction."""

    def __init__(self, conn: AsyncConnection, shared: EngagementHandlers, community: str) -> None:
        engine = cast(AsyncEngine, OneTransaction(conn))
        self.conn = conn
        self.community_id = community
        self.store = shared.store
        self.handlers = EngagementHandlers(engine, shared.store)
        self.ingest = IngestHandlers(engine, shared.store)

    async def record(self, command: Command) -> dict[str, Any]:
        if isinstance(command, PublishContent):
            return await self._publish(command)
        if isinstance(command, GiveFeedback):
            entry = await self.handlers.submit_feedback(SubmitFeedback(
                community_id=self.community_id, member_id=str(command.member_id),
                about_kind=command.about_kind,
                about_id=str(command.about_id) if command.about_id else None,
                rating=command.rating, channel=command.channel, body=command.text,
                submitted_at=command.submitted_at or utc_now(),
            ))
            return {"op": command.op, "id": entry.feedback.id, "recorded": True}
        if isinstance(command, CountReactionsOf):
            return await self._count_reactions(command)
        return await self._on_content(command)

    async def _count_reactions(self, command: CountReactionsOf) -> dict[str, Any]:
        content_id = await self._content_id(command)
        if content_id is None:
            return {"op": command.op, "recorded": False,
                    "skipped": "no content item was published from this reference"}
        stream = reaction_counter_id(content_id, command.counter, command.kind)
        if command.total == 0 and await views.get_reaction_count(self.conn, stream) is None:
            return {"op": command.op, "recorded": False,
                    "skipped": f"no {command.kind!r} reactions were counted yet"}
        try:
            count, recorded = await self.ingest.count_reactions(CountReactions(
                community_id=self.community_id, content_id=content_id, counter=command.counter,
                kind=command.kind, total=command.total, as_of=command.as_of,
                channel=command.channel,
            ))
        except Stale as stale:
            return {"op": command.op, "recorded": False, "skipped": str(stale)}
        return {"op": command.op, "id": count.id, "recorded": recorded}

    async def _publish(self, command: PublishContent) -> dict[str, Any]:
        content_id = content_id_of(self.community_id, command.content_ref)
        if await views.get_content(self.conn, self.community_id, content_id) is not None:
            return {"op": command.op, "id": content_id, "recorded": False}
        events = content.publish(
            channel=command.content_ref.channel, kind=command.kind,
            published_at=command.published_at or utc_now(), now=utc_now(),
            author_id=str(command.author_id) if command.author_id else None,
        )
        envelopes = await self.store.append(
            self.conn, stream_id=content_id, community_id=self.community_id,
            expected_version=0, events=events, traceparent=current_traceparent(),
        )
        item = replace(content.evolve(None, envelopes[0]), title=command.title, url=command.url)
        await views.save_content(self.conn, item)
        return {"op": command.op, "id": content_id, "recorded": True}

    async def _on_content(self, command: ViewContent | React) -> dict[str, Any]:
        content_id = await self._content_id(command)
        if content_id is None:
            return {"op": command.op, "recorded": False,
                    "skipped": "no content item was published from this reference"}
        fact = _fact(command, content_id)
        [outcome] = await self.ingest.ingest(self.community_id, [fact])
        if outcome.error is None:
            return {"op": command.op, "id": outcome.id, "recorded": outcome.recorded}
        if isinstance(fact, RemoveReaction) and isinstance(outcome.error, NotFound):
            return {"op": command.op, "recorded": False,
                    "skipped": "there is no such reaction to remove"}
        raise outcome.error

    async def _content_id(self, command: ViewContent | React | CountReactionsOf) -> str | None:
        if command.content_id is not None:
            return str(command.content_id)  # ours: an unknown one is refused by the rules
        if command.content_ref is None:
            raise Problem(422, "Invalid command", f"{command.op} names content_id or content_ref",
                          field="content_id")
        content_id = content_id_of(self.community_id, command.content_ref)
        found = await views.publications(self.conn, self.community_id, [content_id])
        return content_id if found else None


def _fact(command: ViewContent | React, content_id: str) -> Fact:
    if isinstance(command, ViewContent):
        return View(content_id=content_id, viewed_at=command.viewed_at or utc_now(),
                    count=command.count, channel=command.channel,
                    member_id=str(command.member_id) if command.member_id else None)
    at = command.at or utc_now()
    if command.op == "add_reaction":
        return AddReaction(content_id=content_id, member_id=str(command.member_id),
                           kind=command.kind, at=at, channel=command.channel)
    return RemoveReaction(content_id=content_id, member_id=str(command.member_id),
                          kind=command.kind, at=at)
