"""Views, counter snapshots (of views and of reactions) and reactions: the high-volume path.

A batch (or a single fact, which is a batch of one) runs in one transaction: one query for the
content items it names and the reaction states it touches, the pure plan, its events (by COPY
from 100 on), and one set-based statement for both read-model tables (`batch_store`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import DomainEvent, new_event_ids, utc_now
from gatherly.eventstore import ConcurrencyConflict, EventStore
from gatherly.telemetry import current_traceparent
from services.engagement import activity, batch, batch_store, views
from services.engagement.activity import CounterSnapshot, ReactionCount
from services.engagement.batch import Fact, Outcome
from services.engagement.domain import counter_id, reaction_counter_id

# Two requests racing on the same reaction or counter: the loser re-reads and decides again
# (and usually finds the fact already recorded). More than a few rounds means real contention.
ATTEMPTS = 3
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CountViews:
    community_id: str
    content_id: str
    counter: str
    total: int
    as_of: datetime
    channel: str | None = None
    custom_channels: frozenset[str] | None = None  # the gateway's list (gatherly.channels)


@dataclass(frozen=True, slots=True)
class CountReactions:
    community_id: str
    content_id: str
    counter: str
    kind: str
    total: int
    as_of: datetime
    channel: str | None = None
    custom_channels: frozenset[str] | None = None


class IngestHandlers:
    def __init__(self, engine: AsyncEngine, store: EventStore) -> None:
        self.engine = engine
        self.store = store

    async def ingest(
        self, community_id: str, facts: list[Fact], custom_channels: frozenset[str] | None = None
    ) -> list[Outcome]:
        """Record what can be recorded; each fact gets its own outcome, in order. A channel a
        fact names is held to `custom_channels` (the gateway's list; None: any custom slug)."""
        return await _retrying(lambda: self._ingest_once(community_id, facts, custom_channels))

    async def count_views(self, command: CountViews) -> tuple[CounterSnapshot, bool]:
        """The counter's snapshot now, and whether this command recorded it."""
        return await _retrying(lambda: self._count_views_once(command))

    async def count_reactions(self, command: CountReactions) -> tuple[ReactionCount, bool]:
        """The platform's count of this reaction kind now, and whether this command recorded
        it."""
        return await _retrying(lambda: self._count_reactions_once(command))

    async def _ingest_once(
        self, community_id: str, facts: list[Fact], custom_channels: frozenset[str] | None
    ) -> list[Outcome]:
        traceparent = current_traceparent()
        async with self.engine.begin() as conn:
            contents, reactions = await batch_store.batch_state(
                conn, community_id, {f.content_id for f in facts}, batch.reaction_ids(facts))
            # Ids from one read of the system's randomness, not one per fact (see new_event_ids).
            view_ids = iter(new_event_ids(sum(isinstance(f, batch.View) for f in facts)))
            plan = batch.plan(facts, contents, reactions, utc_now(), new_id=view_ids.__next__,
                              custom_channels=custom_channels)
            # The events by COPY (from 100 on): binary rows cost the client under half the
            # CPU of one INSERT … unnest of the same rows (asyncpg checks every array element),
            # made straight from the plan's (stream, version, event): no envelope each.
            await self.store.append_decided(conn, plan.events, community_id=community_id,
                                            traceparent=traceparent)
            await batch_store.save_read_models(conn, community_id, plan.views,
                                               list(plan.reactions.values()))
        return plan.outcomes

    async def _count_views_once(self, command: CountViews) -> tuple[CounterSnapshot, bool]:
        async with self.engine.begin() as conn:
            found = await views.publications(conn, command.community_id, [command.content_id])
            content = activity.require_publication(found.get(command.content_id),
                                                   command.content_id)
            stream = counter_id(content.id, command.counter)
            current = await views.get_counter(conn, stream)
            events = activity.count_views(
                current, content, counter=command.counter, total=command.total,
                as_of=command.as_of, now=utc_now(), channel=command.channel,
                custom_channels=command.custom_channels,
            )
            if not events:
                assert current is not None  # only a repeated snapshot decides nothing
                return current, False
            version = await self._append_snapshot(conn, stream, command.community_id,
                                                  current.version if current else 0, events)
            snapshot = CounterSnapshot(stream, content.id, command.counter, command.total,
                                       command.as_of, version)
            await views.save_counter(conn, command.community_id, snapshot,
                                     str(events[0].data["channel"]))
        return snapshot, True

    async def _count_reactions_once(self, command: CountReactions) -> tuple[ReactionCount, bool]:
        async with self.engine.begin() as conn:
            found = await views.publications(conn, command.community_id, [command.content_id])
            content = activity.require_publication(found.get(command.content_id),
                                                   command.content_id)
            stream = reaction_counter_id(content.id, command.counter, command.kind)
            current = await views.get_reaction_count(conn, stream)
            events = activity.count_reactions(
                current, content, counter=command.counter, kind=command.kind,
                total=command.total, as_of=command.as_of, now=utc_now(),
                channel=command.channel, custom_channels=command.custom_channels,
            )
            if not events:
                assert current is not None  # only a repeated snapshot decides nothing
                return current, False
            version = await self._append_snapshot(conn, stream, command.community_id,
                                                  current.version if current else 0, events)
            count = ReactionCount(stream, content.id, command.counter, command.kind,
                                  command.total, command.as_of, version)
            await views.save_reaction_count(conn, command.community_id, count,
                                            str(events[0].data["channel"]))
        return count, True

    async def _append_snapshot(
        self, conn: AsyncConnection, stream: str, community_id: str, expected_version: int,
        events: list[DomainEvent],
    ) -> int:
        """Append a counter snapshot's events; the counter's new version."""
        envelopes = await self.store.append(
            conn, stream_id=stream, community_id=community_id,
            expected_version=expected_version, events=events, traceparent=current_traceparent(),
        )
        return envelopes[-1].sequence


async def _retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    for _ in range(ATTEMPTS - 1):
        try:
            return await attempt()
        except ConcurrencyConflict:
            continue
    return await attempt()
