"""Member commands: load, decide, append the events, update the read models; one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.channels import known_channel
from gatherly.envelope import DomainEvent, Envelope, utc_now
from gatherly.eventstore import EventStore
from gatherly.telemetry import current_traceparent
from gatherly.web import VersionMismatch
from services.members import domain, personal, views
from services.members.domain import Member, MemberStatus
from services.members.personal import Profile
from services.members.views import MemberView


@dataclass(frozen=True, slots=True)
class JoinMember:
    community_id: str
    channel: str
    joined_at: datetime
    invited_by: str | None = None
    external_ref: str | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)
    custom_channels: frozenset[str] | None = None  # None: any custom slug (see domain)


@dataclass(frozen=True, slots=True)
class LeaveMember:
    community_id: str
    member_id: str
    left_at: datetime
    reason: str | None = None
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class RejoinMember:
    community_id: str
    member_id: str
    channel: str
    rejoined_at: datetime
    expected_version: int | None = None
    custom_channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ChangeRole:
    community_id: str
    member_id: str
    role: str
    at: datetime
    assign: bool = True


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    community_id: str
    member_id: str
    changes: Mapping[str, Any]
    at: datetime
    expected_version: int | None  # None: `If-Match: *`, whatever the version
    custom_channels: frozenset[str] | None = None  # handles are keyed by channel


@dataclass(frozen=True, slots=True)
class EraseMember:
    community_id: str
    member_id: str
    at: datetime


class MemberNotFound(Exception):
    pass




Decision = Callable[[Member], list[DomainEvent]]


class MemberHandlers:
    def __init__(
        self, engine: AsyncEngine, store: EventStore, *, shared_transaction: bool = False
    ) -> None:
        """`shared_transaction`: `engine` hands every command one open transaction (an inbound
        delivery's, `gatherly.inbound.OneTransaction`), so a join cannot take a connection of
        its own and runs in that transaction like every other command."""
        self.engine = engine
        self.store = store
        self.shared_transaction = shared_transaction
        self._ref_key: str | None = None

    async def ref_key(self, conn: AsyncConnection) -> str:
        if self._ref_key is None:
            self._ref_key = await views.ref_key(conn)
        return self._ref_key

    async def join(self, command: JoinMember) -> tuple[MemberView, bool]:
        """The member and whether this call created it (False: the reference was known).

        A join is the hottest write, so it is one statement: the list and profile rows and the
        `joined` event together (`EventStore.append_if_written`), atomic by itself, on an
        autocommit connection — no BEGIN and COMMIT round trips. A new member's stream is brand
        new (a fresh uuid), so its event is version 1 and the store's unique (stream, version)
        still guards it. A join with a referrer runs in a transaction: the referrer is checked
        after the statement, and a refused join rolls its rows back."""
        # Before the reference lookup: a channel the community does not have is refused even
        # when the reference is known.
        domain.check_channel(command.channel, command.custom_channels)
        domain.check_happened(command.joined_at, utc_now(), rule="joined_at")
        changes = personal.profile_changes(
            command.profile, lambda c: known_channel(c, command.custom_channels)
        )
        profile = Profile(**changes)
        if command.invited_by or self.shared_transaction:
            async with self.engine.begin() as conn:
                view, created = await self._record_join(conn, command, profile)
                if created:  # a known member is answered whatever the referrer
                    await self._check_referrer(conn, command.community_id, command.invited_by)
                return view, created
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await self._record_join(conn, command, profile)

    async def _record_join(
        self, conn: AsyncConnection, command: JoinMember, profile: Profile
    ) -> tuple[MemberView, bool]:
        member_id = str(uuid.uuid4())
        ref_hash = await self._ref_hash(conn, command)
        events = domain.join(
            member_id, channel=command.channel, joined_at=command.joined_at,
            invited_by=command.invited_by, external_ref=ref_hash,
            custom_channels=command.custom_channels,
        )
        envelopes = self._first_envelopes(command.community_id, member_id, events)
        member = domain.replay(envelopes)
        assert member is not None
        writes, params = views.new_member_writes(member, profile, command.external_ref)
        if await self.store.append_if_written(conn, envelopes, writes=writes, params=params):
            return MemberView(member, profile, command.external_ref), True
        # The person is known (maybe through a racing join that committed a moment ago):
        # nothing was written; answer with that member.
        assert ref_hash is not None
        known = await self._known(conn, command, ref_hash)
        assert known is not None
        return known, False

    def _first_envelopes(
        self, community_id: str, member_id: str, events: list[DomainEvent]
    ) -> list[Envelope]:
        traceparent = current_traceparent()
        return [
            self.store.envelope(event, stream_id=member_id, community_id=community_id,
                                version=version, traceparent=traceparent)
            for version, event in enumerate(events, start=1)
        ]

    async def leave(self, command: LeaveMember) -> MemberView:
        domain.check_happened(command.left_at, utc_now(), rule="left_at")
        return await self._change(
            command.community_id, command.member_id, command.expected_version,
            lambda m: domain.leave(m, left_at=command.left_at, reason=command.reason),
        )

    async def rejoin(self, command: RejoinMember) -> MemberView:
        domain.check_happened(command.rejoined_at, utc_now(), rule="rejoined_at")
        return await self._change(
            command.community_id, command.member_id, command.expected_version,
            lambda m: domain.rejoin(m, channel=command.channel, rejoined_at=command.rejoined_at,
                                    custom_channels=command.custom_channels),
        )

    async def change_role(self, command: ChangeRole) -> MemberView:
        decide = domain.assign_role if command.assign else domain.remove_role
        return await self._change(
            command.community_id, command.member_id, None,
            lambda m: decide(m, command.role, at=command.at),
        )

    async def update_profile(self, command: UpdateProfile) -> MemberView:
        changes = personal.profile_changes(
            command.changes, lambda c: known_channel(c, command.custom_channels))
        async with self.engine.begin() as conn:
            view = await self._load(conn, command.community_id, command.member_id)
            if command.expected_version not in (None, view.member.version):
                raise VersionMismatch(view.member.version)
            profile, changed = personal.apply_changes(view.profile or Profile(), changes)
            member = await self._append(
                conn, view.member, domain.update_profile(view.member, changed, at=command.at)
            )
            if changed:
                await views.save_profile(conn, member, profile, view.external_ref)
                await views.save(conn, member)  # the version a read's ETag gives
        return MemberView(member, profile, view.external_ref)

    async def erase(self, command: EraseMember) -> MemberView:
        async with self.engine.begin() as conn:
            view = await self._load(conn, command.community_id, command.member_id)
            member = await self._append(
                conn, view.member, domain.erase(view.member, at=command.at)
            )
            await self.store.redact(conn, member.id, domain.NON_PERSONAL_FIELDS)
            await views.forget(conn, member)
        return MemberView(member)

    async def _change(
        self, community_id: str, member_id: str, expected_version: int | None, decide: Decision
    ) -> MemberView:
        async with self.engine.begin() as conn:
            view = await self._load(conn, community_id, member_id)
            if expected_version not in (None, view.member.version):
                raise VersionMismatch(view.member.version)
            member = await self._append(conn, view.member, decide(view.member))
            if member.version != view.member.version:
                await views.save(conn, member)
        return MemberView(member, view.profile, view.external_ref)

    async def _append(
        self, conn: AsyncConnection, member: Member, events: list[DomainEvent]
    ) -> Member:
        if not events:
            return member
        envelopes = await self.store.append(
            conn, stream_id=member.id, community_id=member.community_id,
            expected_version=member.version, events=events, traceparent=current_traceparent(),
        )
        for envelope in envelopes:
            member = domain.evolve(member, envelope)
        return member

    async def _load(self, conn: AsyncConnection, community_id: str, member_id: str) -> MemberView:
        """The member from its stream (the truth), with the profile the store holds."""
        member = domain.replay(await self.store.read_stream(conn, member_id))
        if member is None or member.community_id != community_id:
            raise MemberNotFound(member_id)
        listed = await views.get(conn, community_id, member_id)
        if listed is None:
            return MemberView(member)
        return MemberView(member, listed.profile, listed.external_ref)

    async def _ref_hash(self, conn: AsyncConnection, command: JoinMember) -> str | None:
        if not command.external_ref:
            return None
        key = await self.ref_key(conn)
        return personal.ref_hash(key, command.community_id, command.channel, command.external_ref)

    async def _known(
        self, conn: AsyncConnection, command: JoinMember, ref_hash: str
    ) -> MemberView | None:
        return await views.find_by_ref(conn, command.community_id, command.channel, ref_hash)

    async def _check_referrer(
        self, conn: AsyncConnection, community_id: str, invited_by: str | None
    ) -> None:
        if not invited_by:
            return
        referrer = await views.get(conn, community_id, invited_by)
        if referrer is None or referrer.member.status is MemberStatus.ERASED:
            raise domain.DomainError(
                "the referrer is not a member of this community", rule="invited_by"
            )
