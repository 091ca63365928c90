"""Member commands: load, decide, append the events and update the list in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.eventstore import EventStore
from gatherly.telemetry import current_traceparent
from services.members import domain, views
from services.members.domain import Member


@dataclass(frozen=True, slots=True)
class JoinMember:
    community_id: str
    channel: str
    joined_at: datetime
    invited_by: str | None = None
    external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveMember:
    community_id: str
    member_id: str
    left_at: datetime
    reason: str | None = None
    expected_version: int | None = None


class MemberNotFound(Exception):
    pass


class VersionMismatch(Exception):
    """The caller's If-Match names a version the member no longer has."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the member is at version {current}")
        self.current = current


class MemberHandlers:
    def __init__(self, engine: AsyncEngine, store: EventStore) -> None:
        self.engine = engine
        self.store = store

    async def join(self, command: JoinMember) -> Member:
        member_id = str(uuid.uuid4())
        events = domain.join(
            member_id,
            channel=command.channel,
            joined_at=command.joined_at,
            invited_by=command.invited_by,
            external_ref=command.external_ref,
        )
        async with self.engine.begin() as conn:
            if command.invited_by and not await views.get(
                conn, command.community_id, command.invited_by
            ):
                raise domain.DomainError("the referrer is not a member of this community")
            envelopes = await self.store.append(
                conn,
                stream_id=member_id,
                community_id=command.community_id,
                expected_version=0,
                events=events,
                traceparent=current_traceparent(),
            )
            member = domain.replay(envelopes)
            assert member is not None
            await views.save(conn, member)
        return member

    async def leave(self, command: LeaveMember) -> Member:
        async with self.engine.begin() as conn:
            member = await self._load(conn, command.community_id, command.member_id)
            if command.expected_version not in (None, member.version):
                raise VersionMismatch(member.version)
            envelopes = await self.store.append(
                conn,
                stream_id=member.id,
                community_id=member.community_id,
                expected_version=member.version,
                events=domain.leave(member, left_at=command.left_at, reason=command.reason),
                traceparent=current_traceparent(),
            )
            for envelope in envelopes:
                member = domain.evolve(member, envelope)
            await views.save(conn, member)
        return member

    async def _load(self, conn: AsyncConnection, community_id: str, member_id: str) -> Member:
        member = domain.replay(await self.store.read_stream(conn, member_id))
        if member is None or member.community_id != community_id:
            raise MemberNotFound(member_id)
        return member
