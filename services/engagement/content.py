"""The content item aggregate: published on a channel, described, archived. Pure.

The published facts (channel, kind, author, publication time) are what the KPIs count by, so they
are fixed once published. The description (title, url) is the service's own record: events name
the fields that changed, never their values, like a member's profile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gatherly.envelope import DomainEvent, Envelope
from services.engagement.domain import (
    CONTENT_KINDS,
    DomainError,
    require_channel,
    require_not_future,
)

PUBLISHED = "gatherly.content.published"
UPDATED = "gatherly.content.updated"
ARCHIVED = "gatherly.content.archived"
DESCRIBED_FIELDS = ("title", "url")


@dataclass(frozen=True, slots=True)
class Content:
    id: str
    community_id: str
    channel: str
    kind: str
    published_at: datetime
    author_id: str | None = None
    title: str | None = None
    url: str | None = None
    archived_at: datetime | None = None
    version: int = 0

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


def publish(
    *, channel: str, kind: str, published_at: datetime, now: datetime,
    author_id: str | None = None, custom_channels: frozenset[str] | None = None,
) -> list[DomainEvent]:
    require_channel(channel, custom_channels)
    if kind not in CONTENT_KINDS:
        raise DomainError(f"unknown content kind {kind!r}", field="kind")
    require_not_future(published_at, now, field="published_at")
    data: dict[str, object] = {
        "channel": channel, "kind": kind, "published_at": published_at.isoformat(),
    }
    if author_id:
        data["author_id"] = author_id
    return [DomainEvent(PUBLISHED, data, published_at)]


def describe(content: Content, changes: dict[str, str | None], now: datetime) -> list[DomainEvent]:
    """Change the description; nothing to record when every value is already the current one."""
    if content.archived:
        raise DomainError("an archived content item cannot be edited")
    unknown = sorted(set(changes) - set(DESCRIBED_FIELDS))
    if unknown:
        raise DomainError(f"{unknown[0]} cannot be edited", field=unknown[0])
    changed = [name for name in DESCRIBED_FIELDS
               if name in changes and changes[name] != getattr(content, name)]
    return [DomainEvent(UPDATED, {"fields": changed}, now)] if changed else []


def with_description(content: Content, changes: dict[str, str | None]) -> Content:
    """The item as described after `changes` (the values live in the service's own store)."""
    return replace(content, title=changes.get("title", content.title),
                   url=changes.get("url", content.url))


def archive(content: Content, *, archived_at: datetime, now: datetime) -> list[DomainEvent]:
    if content.archived:
        raise DomainError("the content item is already archived")
    require_not_future(archived_at, now, field="archived_at")
    if archived_at < content.published_at:
        raise DomainError("archived_at is before the publication", field="archived_at")
    return [DomainEvent(ARCHIVED, {"archived_at": archived_at.isoformat()}, archived_at)]


def evolve(state: Content | None, event: Envelope) -> Content:
    """The item after `event`; the description is not in events, so it is carried over."""
    if event.type == PUBLISHED:
        return Content(
            id=event.subject,
            community_id=event.community_id,
            channel=str(event.data["channel"]),
            kind=str(event.data["kind"]),
            published_at=event.time,
            author_id=event.data.get("author_id"),
            version=event.sequence,
        )
    if state is None:
        raise DomainError(f"{event.type} before the content item was published")
    if event.type == ARCHIVED:
        return replace(state, archived_at=event.time, version=event.sequence)
    return replace(state, version=event.sequence)
