"""The live stream's loop with a fake query and no database: what it pushes, and how often a
stream woken by every projection batch asks the database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from services.kpi import live
from services.kpi.projections import CHANNEL


class Quiet(live.Notifier):
    """A notifier that never connects: the test wakes the streams itself."""

    def __init__(self) -> None:
        super().__init__("postgresql://unused")

    async def listen(self) -> None:
        return None

    def wake(self, community: str) -> None:
        self._on_notify(None, 0, CHANNEL, community)


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.total = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"members": {"total": self.total}}


async def collect(stream: AsyncIterator[str], into: list[str]) -> None:
    async for message in stream:
        into.append(message)


async def stop(reader: asyncio.Task[None]) -> None:
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader


async def test_a_stream_woken_by_every_batch_queries_a_few_times_a_second() -> None:
    notifier, query, pushed = Quiet(), Counting(), list[str]()
    reader = asyncio.create_task(collect(live.kpi_events(notifier, "c1", query), pushed))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 1.0:  # a projection committing a batch every 5 ms
        query.total += 1
        notifier.wake("c1")
        await asyncio.sleep(0.005)
    elapsed = loop.time() - started
    await asyncio.sleep(live.QUERY_INTERVAL_SECONDS * 2)  # the last change still goes out
    await stop(reader)
    # At most one query per interval (plus the first); the sleep only ever lowers the count.
    assert 2 <= query.calls <= elapsed / live.QUERY_INTERVAL_SECONDS + 2
    assert pushed[-1] == f'event: kpis\ndata: {{"members": {{"total": {query.total}}}}}\n\n'
    assert not notifier.wakers


async def test_an_unchanged_answer_is_a_comment_and_another_community_wakes_nothing() -> None:
    notifier, query, pushed = Quiet(), Counting(), list[str]()
    reader = asyncio.create_task(collect(live.kpi_events(notifier, "c1", query), pushed))
    await asyncio.sleep(0)
    notifier.wake("c2")
    await asyncio.sleep(live.QUERY_INTERVAL_SECONDS * 2)
    assert query.calls == 1
    notifier.wake("c1")
    await asyncio.sleep(live.QUERY_INTERVAL_SECONDS * 2)
    await stop(reader)
    assert query.calls == 2
    assert pushed == ['event: kpis\ndata: {"members": {"total": 0}}\n\n', ": still here\n\n"]


async def test_a_failed_query_keeps_the_stream_and_the_next_answer_goes_out() -> None:
    notifier, pushed = Quiet(), list[str]()
    answers: list[dict[str, Any] | Exception] = [
        {"members": {"total": 1}}, ConnectionRefusedError("database restarting"),
        {"members": {"total": 1}}, {"members": {"total": 2}}]

    async def query() -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    reader = asyncio.create_task(collect(live.kpi_events(notifier, "c1", query), pushed))
    for _ in range(3):
        await asyncio.sleep(live.QUERY_INTERVAL_SECONDS * 1.5)
        notifier.wake("c1")
    await asyncio.sleep(live.QUERY_INTERVAL_SECONDS * 1.5)
    await stop(reader)
    assert pushed == ['event: kpis\ndata: {"members": {"total": 1}}\n\n',
                      ": kpis unavailable, retrying\n\n", ": still here\n\n",
                      'event: kpis\ndata: {"members": {"total": 2}}\n\n']
