"""The engagement API's request and response shapes (pydantic, `extra="forbid"` on input)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gatherly.web import Count, Moment
from services.engagement.activity import Reaction
from services.engagement.content import Content
from services.engagement.people_views import FeedbackEntry

Channel = Annotated[str, Field(min_length=2, max_length=32, examples=["youtube"])]
Kind = Annotated[str, Field(min_length=2, max_length=32, examples=["like"])]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentCreate(Input):
    channel: Channel
    kind: Literal["post", "video", "article", "newsletter", "story", "other"]
    published_at: Moment | None = Field(
        default=None, description="when it was published (defaults to now; an import may set "
        "the past); ISO 8601 with offset")
    author_id: uuid.UUID | None = None
    title: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)


class ContentUpdate(Input):
    title: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)


class ContentArchive(Input):
    archived_at: Moment | None = None


class ContentPublic(BaseModel):
    id: str
    community_id: str
    channel: str
    kind: str
    author_id: str | None
    published_at: datetime
    title: str | None
    url: str | None
    archived_at: datetime | None
    version: int
    stats: dict[str, Any] | None = None


class ContentPage(BaseModel):
    items: list[ContentPublic]
    next_cursor: str | None


class ViewCreate(Input):
    content_id: uuid.UUID
    member_id: uuid.UUID | None = Field(default=None, description="absent for anonymous views")
    count: int = Field(default=1, ge=1, le=1_000_000)
    channel: Channel | None = Field(default=None, description="defaults to the item's channel")
    viewed_at: Moment | None = None


class ViewItem(ViewCreate):
    op: Literal["view"]


class ReactionCreate(Input):
    content_id: uuid.UUID
    member_id: uuid.UUID
    kind: Kind
    channel: Channel | None = Field(default=None, description="defaults to the item's channel")
    at: Moment | None = None


class AddReactionItem(ReactionCreate):
    op: Literal["add_reaction"]


class RemoveReactionItem(Input):
    op: Literal["remove_reaction"]
    content_id: uuid.UUID
    member_id: uuid.UUID
    kind: Kind
    at: Moment | None = None


BatchItem = Annotated[ViewItem | AddReactionItem | RemoveReactionItem,
                      Field(discriminator="op")]


class CounterSnapshotCreate(Input):
    content_id: uuid.UUID
    counter: Channel = Field(description="whose counter: youtube, vk, …")
    total: Count
    as_of: Moment
    channel: Channel | None = None


class ReactionCountCreate(Input):
    counter: Channel = Field(description="whose count: telegram, vk, …")
    kind: Kind
    total: Count
    as_of: Moment
    channel: Channel | None = Field(default=None, description="defaults to the item's channel")


class ReactionPublic(BaseModel):
    id: str
    content_id: str
    member_id: str
    kind: str
    channel: str
    active: bool
    at: datetime
    version: int


class FeedbackCreate(Input):
    member_id: uuid.UUID
    about_kind: Literal["event", "content", "community"]
    about_id: uuid.UUID | None = None
    rating: int | None = Field(default=None, description="1 to 5")
    channel: Channel
    text: str = Field(min_length=1, max_length=10_000)
    submitted_at: Moment | None = None


class FeedbackStep(Input):
    by_member: uuid.UUID | None = None
    at: Moment | None = None


class FeedbackAnswer(FeedbackStep):
    answer: str | None = Field(default=None, max_length=10_000)


class FeedbackPublic(BaseModel):
    id: str
    community_id: str
    member_id: str
    about_kind: str
    about_id: str | None
    rating: int | None
    channel: str
    text: str
    status: str
    submitted_at: datetime
    answered_at: datetime | None
    answered_by: str | None
    answer: str | None
    resolved_at: datetime | None
    version: int


class FeedbackPage(BaseModel):
    items: list[FeedbackPublic]
    next_cursor: str | None


class IntroductionCreate(Input):
    member_a: uuid.UUID
    member_b: uuid.UUID
    by_member: uuid.UUID = Field(description="the catalyst")
    at: Moment | None = None


class ThanksCreate(Input):
    to_member: uuid.UUID
    by_member: uuid.UUID | None = None
    reason: str | None = Field(default=None, max_length=500)
    about_kind: Literal["event", "content"] | None = None
    about_id: uuid.UUID | None = None
    at: Moment | None = None


class RecordPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def content_public(item: Content, stats: dict[str, Any] | None = None) -> ContentPublic:
    return ContentPublic(
        id=item.id, community_id=item.community_id, channel=item.channel, kind=item.kind,
        author_id=item.author_id, published_at=item.published_at, title=item.title,
        url=item.url, archived_at=item.archived_at, version=item.version, stats=stats,
    )


def reaction_public(reaction: Reaction) -> ReactionPublic:
    return ReactionPublic(
        id=reaction.id, content_id=reaction.content_id, member_id=reaction.member_id,
        kind=reaction.kind, channel=reaction.channel, active=reaction.active, at=reaction.at,
        version=reaction.version,
    )


def feedback_public(entry: FeedbackEntry) -> FeedbackPublic:
    f = entry.feedback
    return FeedbackPublic(
        id=f.id, community_id=f.community_id, member_id=f.member_id, about_kind=f.about_kind,
        about_id=f.about_id, rating=f.rating, channel=f.channel, text=entry.body,
        status=f.status.value, submitted_at=f.submitted_at, answered_at=f.answered_at,
        answered_by=f.answered_by, answer=entry.answer, resolved_at=f.resolved_at,
        version=f.version,
    )


def optional_id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None
