"""The live stream: Server-Sent Events with a community's headline KPIs whenever they change.

The projection's transaction sends `NOTIFY kpi_changed, '<community>'`; it is only a wake-up
hint (DESIGN §4): a woken stream re-queries and pushes only if the answer changed, and a stream
also re-queries every few seconds, so a lost notification delays an update, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError

from gatherly.settings import to_libpq_url
from services.kpi.projections import CHANNEL

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 5.0
# A busy projection notifies once per batch (many a second): a stream re-queries at most this
# often, so a burst costs a few queries, and the first change after a quiet spell goes at once.
QUERY_INTERVAL_SECONDS = 0.25


class Notifier:
    """One LISTEN connection per app, fanned out to the streams of each community."""

    def __init__(self, database_url: str) -> None:
        self.url = to_libpq_url(database_url)
        self.wakers: dict[str, set[asyncio.Event]] = {}
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def listen(self) -> None:
        """(Re)open the LISTEN connection if it is not open; without it streams still poll."""
        if self._closed or (self._conn is not None and not self._conn.is_closed()):
            return
        async with self._lock:
            if not self._closed and (self._conn is None or self._conn.is_closed()):
                with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                    conn = await asyncpg.connect(self.url, timeout=5)
                    await conn.add_listener(CHANNEL, self._on_notify)
                    conn.add_termination_listener(self._on_lost)
                    self._conn = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, community: object) -> None:
        for event in self.wakers.get(str(community), ()):
            event.set()

    def _on_lost(self, _conn: object) -> None:
        # Notifications sent while nobody listened are gone: every stream re-queries now (and
        # so reconnects) rather than at its next fallback.
        for events in self.wakers.values():
            for event in events:
                event.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, community: str) -> AsyncIterator[asyncio.Event]:
        await self.listen()
        event = asyncio.Event()
        self.wakers.setdefault(community, set()).add(event)
        try:
            yield event
        finally:
            # Drop the community's entry with its last stream: ids come from clients.
            streams = self.wakers.get(community, set())
            streams.discard(event)
            if not streams:
                self.wakers.pop(community, None)

    async def close(self) -> None:
        self._closed = True
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


async def kpi_events(
    notifier: Notifier, community: str, query: Callable[[], Awaitable[dict[str, Any]]]
) -> AsyncIterator[str]:
    """`event: kpis` with the summary now, then again each time it changes."""
    clock = asyncio.get_running_loop().time
    async with notifier.subscribe(community) as woken:
        last: str | None = None
        while True:
            await notifier.listen()
            queried = clock()
            message, last = await _message(community, query, last)
            yield message
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), FALLBACK_SECONDS)
            await asyncio.sleep(max(0.0, queried + QUERY_INTERVAL_SECONDS - clock()))
            woken.clear()


async def _message(
    community: str, query: Callable[[], Awaitable[dict[str, Any]]], last: str | None
) -> tuple[str, str | None]:
    """What to send for the answer now, and the answer the client then holds."""
    try:
        current = json.dumps(await query(), sort_keys=True)
    except (OSError, TimeoutError, DBAPIError) as error:
        # The database is away (a restart): keep the stream and ask again later.
        log.warning("KPI stream of %s: query failed: %r", community, error)
        return ": kpis unavailable, retrying\n\n", last
    if current == last:
        return ": still here\n\n", last  # keeps proxies from closing an idle stream
    return f"event: kpis\ndata: {current}\n\n", current
