"""Content, feedback, introductions and thanks: load, decide, append the events and update the
read model in one transaction. (Views and reactions have their own set-based path: ingest.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import DomainEvent, Envelope, utc_now
from gatherly.eventstore import EventStore
from gatherly.telemetry import current_traceparent
from gatherly.web import VersionMismatch
from services.engagement import (
    connections,
    content,
    erasure,
    erasure_store,
    feedback,
    people_views,
    views,
)
from services.engagement.content import Content
from services.engagement.domain import DomainError, NotFound
from services.engagement.people_views import FeedbackEntry


@dataclass(frozen=True, slots=True)
class PublishContent:
    community_id: str
    channel: str
    kind: str
    published_at: datetime
    author_id: str | None = None
    title: str | None = None
    url: str | None = None
    custom_channels: frozenset[str] | None = None  # the gateway's list (gatherly.channels)


@dataclass(frozen=True, slots=True)
class DescribeContent:
    community_id: str
    content_id: str
    changes: dict[str, str | None]
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class ArchiveContent:
    community_id: str
    content_id: str
    archived_at: datetime
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class SubmitFeedback:
    community_id: str
    member_id: str
    about_kind: str
    about_id: str | None
    rating: int | None
    channel: str
    body: str
    submitted_at: datetime
    custom_channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class AdvanceFeedback:
    """Answer or resolve: the step is the handler method that receives it."""

    community_id: str
    feedback_id: str
    at: datetime
    by_member: str | None = None
    answer: str | None = None
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class Introduce:
    community_id: str
    member_a: str
    member_b: str
    by_member: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Thank:
    community_id: str
    to_member: str
    at: datetime
    by_member: str | None = None
    reason: str | None = None
    about_kind: str | None = None
    about_id: str | None = None


# feedback.answer or feedback.resolve: the same shape, a different step of the lifecycle.
FeedbackStep = Callable[..., list[DomainEvent]]




class EngagementHandlers:
    def __init__(self, engine: AsyncEngine, store: EventStore) -> None:
        self.engine = engine
        self.store = store

    async def publish(self, command: PublishContent) -> Content:
        events = content.publish(channel=command.channel, kind=command.kind,
                                 published_at=command.published_at, now=utc_now(),
                                 author_id=command.author_id,
                                 custom_channels=command.custom_channels)
        async with self.engine.begin() as conn:
            envelopes = await self._append(conn, str(uuid.uuid4()), command.community_id, 0,
                                           events)
            item = replace(content.evolve(None, envelopes[0]), title=command.title,
                           url=command.url)
            await views.save_content(conn, item)
        return item

    async def describe(self, command: DescribeContent) -> Content:
        async with self.engine.begin() as conn:
            item = await self._content(conn, command.community_id, command.content_id,
                                       command.expected_version)
            events = content.describe(item, command.changes, utc_now())
            if not events:
                return item
            envelopes = await self._append(conn, item.id, item.community_id, item.version,
                                           events)
            item = content.with_description(content.evolve(item, envelopes[0]),
                                            command.changes)
            await views.save_content(conn, item)
        return item

    async def archive(self, command: ArchiveContent) -> Content:
        async with self.engine.begin() as conn:
            item = await self._content(conn, command.community_id, command.content_id,
                                       command.expected_version)
            events = content.archive(item, archived_at=command.archived_at, now=utc_now())
            envelopes = await self._append(conn, item.id, item.community_id, item.version,
                                           events)
            item = content.evolve(item, envelopes[0])
            await views.save_content(conn, item)
        return item

    async def submit_feedback(self, command: SubmitFeedback) -> FeedbackEntry:
        events = feedback.submit(
            member_id=command.member_id, about_kind=command.about_kind,
            about_id=command.about_id, rating=command.rating, channel=command.channel,
            submitted_at=command.submitted_at, now=utc_now(),
            custom_channels=command.custom_channels,
        )
        async with self.engine.begin() as conn:
            erased = await erasure_store.erased_among(conn, command.community_id,
                                                      [command.member_id])
            body = erasure.words_kept(command.body, [command.member_id], erased) or ""
            await self._require_content_if(conn, command.community_id, command.about_kind,
                                           command.about_id)
            envelopes = await self._append(conn, str(uuid.uuid4()), command.community_id, 0,
                                           events)
            state = feedback.replay(envelopes)
            assert state is not None
            await people_views.save_feedback(conn, state, body=body)
        return FeedbackEntry(state, body, None)

    async def answer_feedback(self, command: AdvanceFeedback) -> FeedbackEntry:
        return await self._advance(command, feedback.answer)

    async def resolve_feedback(self, command: AdvanceFeedback) -> FeedbackEntry:
        return await self._advance(command, feedback.resolve)

    async def introduce(self, command: Introduce) -> dict[str, Any]:
        events = connections.introduce(member_a=command.member_a, member_b=command.member_b,
                                       by_member=command.by_member, at=command.at, now=utc_now())
        introduction_id = str(uuid.uuid4())
        record = {"id": introduction_id, "community_id": command.community_id,
                  "member_a": command.member_a, "member_b": command.member_b,
                  "by_member": command.by_member, "at": command.at}
        async with self.engine.begin() as conn:
            await self._append(conn, introduction_id, command.community_id, 0, events)
            await people_views.save_introduction(conn, record)
        return record

    async def thank(self, command: Thank) -> dict[str, Any]:
        people = [command.to_member, command.by_member]
        async with self.engine.begin() as conn:
            # Checked before deciding: the reason goes in the event too, and the log keeps it.
            erased = await erasure_store.erased_among(conn, command.community_id, people)
            reason = erasure.words_kept(command.reason, people, erased)
            events = connections.thank(
                to_member=command.to_member, at=command.at, now=utc_now(),
                by_member=command.by_member, reason=reason, about_kind=command.about_kind,
                about_id=command.about_id,
            )
            thanks_id = str(uuid.uuid4())
            record = {"id": thanks_id, "community_id": command.community_id,
                      "to_member": command.to_member, "by_member": command.by_member,
                      "reason": reason, "about_kind": command.about_kind,
                      "about_id": command.about_id, "at": command.at}
            await self._require_content_if(conn, command.community_id, command.about_kind,
                                           command.about_id)
            await self._append(conn, thanks_id, command.community_id, 0, events)
            await people_views.save_thanks(conn, record)
        return record

    async def _advance(self, command: AdvanceFeedback, step: FeedbackStep) -> FeedbackEntry:
        async with self.engine.begin() as conn:
            state = feedback.replay(await self.store.read_stream(conn, command.feedback_id))
            if state is None or state.community_id != command.community_id:
                raise NotFound(f"no feedback {command.feedback_id}")
            if command.expected_version not in (None, state.version):
                raise VersionMismatch(state.version)
            events = step(state, at=command.at, now=utc_now(), by_member=command.by_member)
            for envelope in await self._append(conn, state.id, state.community_id,
                                               state.version, events):
                state = feedback.evolve(state, envelope)
            people = [state.member_id, command.by_member]
            erased = await erasure_store.erased_among(conn, state.community_id, people)
            answer = erasure.words_kept(command.answer, people, erased)
            await people_views.save_feedback(conn, state, answer=answer)
            entry = await people_views.get_feedback(conn, state.community_id, state.id)
        assert entry is not None
        return entry

    async def _content(
        self, conn: AsyncConnection, community_id: str, content_id: str, expected: int | None
    ) -> Content:
        item = await views.get_content(conn, community_id, content_id)
        if item is None:
            raise NotFound(f"no content item {content_id}")
        if expected not in (None, item.version):
            raise VersionMismatch(item.version)
        return item

    async def _require_content_if(
        self, conn: AsyncConnection, community_id: str, about_kind: str | None,
        about_id: str | None,
    ) -> None:
        """Engagement owns content, so "about a content item" is checked, not trusted."""
        if about_kind == "content" and about_id is not None and not await views.publications(
            conn, community_id, [about_id]
        ):
            raise DomainError(f"no content item {about_id} in this community", field="about_id")

    async def _append(
        self, conn: AsyncConnection, stream_id: str, community_id: str, version: int,
        events: list[DomainEvent],
    ) -> list[Envelope]:
        return await self.store.append(
            conn, stream_id=stream_id, community_id=community_id, expected_version=version,
            events=events, traceparent=current_traceparent(),
        )
