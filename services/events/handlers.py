"""Community event commands: load the state from the read model, decide, append, record — all in
one transaction, so a refused command writes nothing and an accepted one is on the log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import DomainEvent, Envelope
from gatherly.eventstore import EventStore
from gatherly.telemetry import current_traceparent
from gatherly.web import VersionMismatch
from services.events import domain, views
from services.events.state import CommunityEvent, DomainError, Format, evolve, replay
from services.events.views import Details

Decide = Callable[[CommunityEvent], list[DomainEvent]]


class EventNotFound(Exception):
    pass




@dataclass(frozen=True, slots=True)
class ScheduleEvent:
    community_id: str
    details: Details
    format: Format
    starts_at: datetime
    ends_at: datetime
    channel: str
    capacity: int | None = None
    custom_channels: frozenset[str] | None = None  # the gateway's list (gatherly.channels)


@dataclass(frozen=True, slots=True)
class Target:
    """Which event a command is about, and the version the caller saw (If-Match), if any."""

    community_id: str
    event_id: str
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class CheckIn:
    at: datetime
    member_id: str | None = None
    code: str | None = None
    walk_in: bool = False
    channel: str | None = None
    custom_channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    event: CommunityEvent
    envelopes: list[Envelope]
    member_id: str | None = None  # the member a seat command was about


class EventHandlers:
    def __init__(self, engine: AsyncEngine, store: EventStore, followup_due_days: int) -> None:
        self.engine = engine
        self.store = store
        self.followup_due_days = followup_due_days

    async def schedule(self, command: ScheduleEvent) -> Outcome:
        event_id = str(uuid.uuid4())
        decided = domain.schedule(
            format=command.format, starts_at=command.starts_at, ends_at=command.ends_at,
            time_zone=command.details.time_zone, channel=command.channel,
            capacity=command.capacity, place=command.details.place, link=command.details.link,
            custom_channels=command.custom_channels,
        )
        async with self.engine.begin() as conn:
            envelopes = await self._append(conn, event_id, command.community_id, 0, decided)
            event = replay(envelopes)
            assert event is not None
            await views.insert(conn, event, command.details)
        return Outcome(event, envelopes)

    async def reschedule(
        self, target: Target, *, starts_at: datetime, ends_at: datetime, time_zone: str | None,
        at: datetime,
    ) -> Outcome:
        async with self.engine.begin() as conn:
            zone = time_zone or await views.time_zone(conn, target.event_id)
            outcome = await self._decide(conn, target, lambda event: domain.reschedule(
                event, starts_at=starts_at, ends_at=ends_at, time_zone=zone or "", at=at))
            await views.set_time_zone(conn, target.event_id, zone or "")
        return outcome

    async def decide(self, target: Target, decide: Decide) -> Outcome:
        """Any command that concerns the event as a whole (cancel, registration, follow-ups…)."""
        async with self.engine.begin() as conn:
            return await self._decide(conn, target, decide, with_followups=True)

    async def finish(self, target: Target, *, at: datetime) -> Outcome:
        return await self.decide(
            target, lambda event: domain.finish(event, at=at, due_days=self.followup_due_days)
        )

    async def register(
        self, target: Target, *, member_id: str, channel: str, at: datetime,
        custom_channels: frozenset[str] | None = None,
    ) -> Outcome:
        async with self.engine.begin() as conn:
            return await self._decide(conn, target, lambda event: domain.register(
                event, member_id=member_id, channel=channel, at=at,
                custom_channels=custom_channels), members=[member_id])

    async def cancel_registration(self, target: Target, *, member_id: str, at: datetime) -> Outcome:
        async with self.engine.begin() as conn:
            return await self._decide(
                conn, target,
                lambda event: domain.cancel_registration(event, member_id=member_id, at=at),
                members=[member_id], waitlist_head=True,
            )

    async def check_in(self, target: Target, command: CheckIn) -> Outcome:
        async with self.engine.begin() as conn:
            member_id = command.member_id or await self._member_with_code(conn, target, command)
            return await self._decide(conn, target, lambda event: domain.check_in(
                event, member_id=member_id, at=command.at, walk_in=command.walk_in,
                channel=command.channel, custom_channels=command.custom_channels),
                members=[member_id])

    async def _member_with_code(
        self, conn: AsyncConnection, target: Target, command: CheckIn
    ) -> str:
        found = await views.member_with_code(conn, target.event_id, command.code or "")
        if found is None:
            await self._load(conn, target)  # 404 for a missing event before the code's 422
            raise DomainError("unknown_code", "no registration of this event has that code")
        return found

    async def _load(
        self, conn: AsyncConnection, target: Target, members: Iterable[str] = (),
        waitlist_head: bool = False, with_followups: bool = False,
    ) -> CommunityEvent:
        event = await views.load(conn, target.community_id, target.event_id, members=members,
                                 waitlist_head=waitlist_head, with_followups=with_followups)
        if event is None:
            raise EventNotFound(target.event_id)
        if target.expected_version not in (None, event.version):
            raise VersionMismatch(event.version)
        return event

    async def _decide(
        self, conn: AsyncConnection, target: Target, decide: Decide,
        members: Iterable[str] = (), waitlist_head: bool = False, with_followups: bool = False,
    ) -> Outcome:
        members = list(members)
        event = await self._load(conn, target, members, waitlist_head, with_followups)
        decided = decide(event)
        if not decided:
            return Outcome(event, [], members[0] if members else None)
        envelopes = await self._append(conn, event.id, event.community_id, event.version, decided)
        for envelope in envelopes:
            event = evolve(event, envelope)
        await views.record(conn, event, envelopes)
        return Outcome(event, envelopes, members[0] if members else None)

    async def _append(
        self, conn: AsyncConnection, event_id: str, community_id: str, version: int,
        decided: list[DomainEvent],
    ) -> list[Envelope]:
        return await self.store.append(
            conn, stream_id=event_id, community_id=community_id, expected_version=version,
            events=decided, traceparent=current_traceparent(),
        )
