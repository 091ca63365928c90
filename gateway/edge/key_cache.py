"""The in-memory view of every usable API key, refreshed from the edge schema every few seconds.

`/auth` runs for every request, so it never waits on the database once the first load is done: a
lookup that finds the view older than `refresh_seconds` starts one refresh in the background and
answers from the current view. A key revoked through this process is dropped at once; one revoked
through another edge replica is gone within `refresh_seconds` plus one refresh. If the database is
unreachable, the last view keeps serving.

It also keeps each community's settings the services need (time zone, feedback SLA, custom
channels), sent to them as headers on every request. A community not in the view (made moments
ago) is read once on its first request; a change through `PATCH` reaches the headers within
`refresh_seconds`. If its settings cannot be read, the request goes on without them and the
services use their defaults (UTC, 24 h, no custom channels).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.edge import store
from gateway.edge.ratelimit import Limit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CachedKey:
    id: str
    community_id: str
    secret_hash: bytes
    scopes: frozenset[str]
    scopes_header: bytes
    expires_at: float | None  # epoch seconds
    limit: Limit


Headers = list[tuple[bytes, bytes]]


def settings_headers(community: store.Community) -> Headers:
    """What a service learns about its community on every request (ASCII: the zone is an IANA
    name, channels are slugs)."""
    return [
        (b"x-gatherly-community-time-zone", community.time_zone.encode()),
        (b"x-gatherly-community-feedback-sla-hours", str(community.feedback_sla_hours).encode()),
        (b"x-gatherly-community-channels", ",".join(community.custom_channels).encode()),
    ]


class KeyStoreUnavailable(Exception):
    """The first load failed: nothing is known about any key yet."""


class KeyCache:
    def __init__(self, engine: AsyncEngine, refresh_seconds: float, default_limit: Limit) -> None:
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._default_limit = default_limit
        self._keys: dict[str, CachedKey] = {}
        self._communities: dict[str, Headers] = {}
        self._loaded_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._first_load = asyncio.Lock()

    async def get(self, key_id: str) -> CachedKey | None:
        if self._loaded_at is None:
            async with self._first_load:
                if self._loaded_at is None:
                    try:
                        await self.refresh()
                    except Exception as error:
                        raise KeyStoreUnavailable from error
        elif time.monotonic() - self._loaded_at > self._refresh_seconds:
            self._refresh_in_background()
        key = self._keys.get(key_id)
        if key is None and self._refreshing is not None and not self._refreshing.done():
            # A key made moments ago on another replica: wait for the refresh under way (at most
            # one database read per interval, however many unknown keys are tried).
            await asyncio.shield(self._refreshing)
            key = self._keys.get(key_id)
        return key

    async def community_headers(self, community_id: str) -> Headers:
        """The community's settings as headers; none for an unknown community (which also
        stays cached until the next refresh, so a flood of unknown ids reads the table once)."""
        found = self._communities.get(community_id)
        if found is not None or not community_id:
            return found or []
        try:
            async with self._engine.connect() as conn:
                community = await store.get_community(conn, community_id)
        except Exception as error:
            log.warning("community settings unavailable, sending none: %s", error)
            return []
        found = self._communities[community_id] = settings_headers(community) if community else []
        return found

    def known_ids(self) -> set[str]:
        return set(self._keys)

    async def refresh(self) -> None:
        async with self._engine.connect() as conn:
            records = await store.usable_keys(conn)
            communities = await _all_communities(conn)
        self._keys = {record.id: self._cached(record) for record in records}
        self._communities = {c.id: settings_headers(c) for c in communities}
        self._loaded_at = time.monotonic()

    def remember(self, record: store.KeyRecord) -> None:
        """A key created through this process works here at once."""
        self._keys[record.id] = self._cached(record)

    def forget(self, key_id: str) -> None:
        """A key revoked through this process stops working here at once."""
        self._keys.pop(key_id, None)

    def _refresh_in_background(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshing = asyncio.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as error:
            # Keep serving the last view; try again after another interval, not on every request.
            self._loaded_at = time.monotonic()
            log.warning("API key refresh failed, serving the last view: %s", error)

    def _cached(self, record: store.KeyRecord) -> CachedKey:
        limit = Limit(
            record.rate_per_second or self._default_limit.rate_per_second,
            record.burst or self._default_limit.burst,
        )
        return CachedKey(
            id=record.id,
            community_id=record.community_id,
            secret_hash=record.secret_hash,
            scopes=frozenset(record.scopes),
            scopes_header=",".join(sorted(record.scopes)).encode(),
            expires_at=record.expires_at.timestamp() if record.expires_at else None,
            limit=limit,
        )


async def _all_communities(conn: AsyncConnection) -> list[store.Community]:
    found, after = [], 0
    while page := await store.page_communities(conn, after, 1000):
        found.extend(page)
        after = page[-1].seq
    return found
