"""The live stream: Server-Sent Events with a community's headline KPIs whenever they change.

The projection's transaction sends `NOTIFY kpi_changed, '<community>'`; it is only a wake-up
hint (DESIGN §4): a woken stream re-queries and pushes only if the answer changed, and a stream
also re-queries every few seconds, so a lost notification delays an update, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from gatherly.settings import to_libpq_url
from services.kpi.projections import CHANNEL

FALLBACK_SECONDS = 5.0


class Notifier:
    """One LISTEN connection per app, fanned out to the streams of each community."""

    def __init__(self, database_url: str) -> None:
        self.url = to_libpq_url(database_url)
        self.wakers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def _listen(self) -> None:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.url, timeout=5)
                await self._conn.add_listener(CHANNEL, self._on_notify)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, community: str) -> None:
        for event in self.wakers.get(community, ()):
            event.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, community: str) -> AsyncIterator[asyncio.Event]:
        # Without the hint the stream still re-queries on its fallback interval.
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self._listen()
        event = asyncio.Event()
        self.wakers[community].add(event)
        try:
            yield event
        finally:
            self.wakers[community].discard(event)

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


async def kpi_events(
    notifier: Notifier, community: str, query: Callable[[], Awaitable[dict[str, Any]]]
) -> AsyncIterator[str]:
    """`event: kpis` with the summary now, then again each time it changes."""
    async with notifier.subscribe(community) as woken:
        last: str | None = None
        while True:
            current = json.dumps(await query(), sort_keys=True)
            if current != last:
                yield f"event: kpis\ndata: {current}\n\n"
                last = current
            else:
                yield ": still here\n\n"  # keeps proxies from closing an idle stream
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), FALLBACK_SECONDS)
            woken.clear()
