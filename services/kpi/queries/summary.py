"""Every headline number for a window, in one answer (also what the live stream pushes and what
a dashboard polls): only the window's totals, each from its rollup or one count, never the
per-period series the full KPIs build.

One moment: every part reads one snapshot, so a batch the projection commits meanwhile is in
all of the numbers or in none (and a part that reads twice, as feedback's quantiles do, finds
the ranks it counted). The parts run side by side on `WIDTH` pooled connections: Postgres
works on each at once, where one connection took the sum of their times. The first connection
opens a REPEATABLE READ transaction and exports its snapshot, the others import it before
their first read. A question that finds every fan-out slot taken (the pool would run dry: a
summary holds its first connection while it waits for the others) runs the parts one after
another on one connection, in one REPEATABLE READ transaction all the same.
`tests/integration/test_kpi_summary.py` commits between the snapshot and the parts' reads."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kpi.queries.beyond import ACTIVE
from services.kpi.queries.channels import TOP
from services.kpi.queries.content import reactions_totals, views_total
from services.kpi.queries.events import events_totals
from services.kpi.queries.feedback import feedback_totals
from services.kpi.queries.members import TOTALS, totals_of
from services.kpi.queries.window import Window

# Connections one summary reads on: members, top channel and active members on the first;
# views, reactions and events on the second; feedback on the third (each 3-4 ms at 1M members,
# docs/benchmarks.md).
WIDTH = 3
# Members, the top channel and the active members: one statement, one round trip.
HEADLINE = f"SELECT m.*, ({TOP}) AS top_channel, ({ACTIVE}) AS active FROM ({TOTALS}) m"
# Built once: text() scans a statement for its parameters each time it is built.
HEADLINE_SQL, EXPORT_SQL = text(HEADLINE), text("SELECT pg_export_snapshot()")
SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+-[0-9]+$")
T = TypeVar("T")


class Summaries:
    """The summary over one engine, with at most `pool_capacity // WIDTH` questions fanned out
    at a time: then every fanned-out question can hold all its connections at once, and the
    others each hold one and wait for none, so no question waits on the pool forever."""

    def __init__(self, engine: AsyncEngine, pool_capacity: int) -> None:
        self.engine = engine
        self._fan_out = asyncio.Semaphore(pool_capacity // WIDTH)

    async def answer(self, community: str, w: Window, sla_hours: float) -> dict[str, Any]:
        if self._fan_out.locked():
            return await self.one_by_one(community, w, sla_hours)
        async with self._fan_out:
            return await self.side_by_side(community, w, sla_hours)

    async def side_by_side(self, community: str, w: Window, sla_hours: float) -> dict[str, Any]:
        async with _reading(self.engine) as first:
            snapshot = str(await first.scalar(EXPORT_SQL))
            # `first` stays open (and its snapshot importable) until every part is done.
            (members, top, active), (views, reactions, events), feedback = await _all(
                _headline(first, community, w),
                self._at(snapshot, lambda conn: _content_and_events(conn, community, w)),
                self._at(snapshot, lambda conn: feedback_totals(conn, community, w, sla_hours)),
            )
        return _answer(members, views, reactions, events, feedback, active, top)

    async def one_by_one(self, community: str, w: Window, sla_hours: float) -> dict[str, Any]:
        async with _reading(self.engine) as conn:
            members, top, active = await _headline(conn, community, w)
            views, reactions, events = await _content_and_events(conn, community, w)
            feedback = await feedback_totals(conn, community, w, sla_hours)
        return _answer(members, views, reactions, events, feedback, active, top)

    async def _at(self, snapshot: str, part: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with _reading(self.engine, snapshot) as conn:
            return await part(conn)


async def _all(*parts: Awaitable[Any]) -> list[Any]:
    """Every part's result; if one fails (or the question is cancelled), the others are
    cancelled and awaited before its error goes on, so no part still holds a connection (or
    reads on the first one) once the summary has given up. Plain `gather` would leave them
    running; a TaskGroup would wrap the error in an ExceptionGroup the callers do not expect."""
    tasks = [asyncio.ensure_future(part) for part in parts]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@contextlib.asynccontextmanager
async def _reading(engine: AsyncEngine, snapshot: str | None = None) -> AsyncIterator[
        AsyncConnection]:
    """A pooled connection in a read-only REPEATABLE READ transaction, on `snapshot` if given.
    Opened by hand in one round trip (SQLAlchemy would send BEGIN, then prepare the SET anew
    for every snapshot id); a connection that fails inside it never goes back to the pool."""
    if snapshot is not None and not SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")  # spliced: SET takes no parameter
    begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    if snapshot is not None:
        begin += f"; SET TRANSACTION SNAPSHOT '{snapshot}'"
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")  # the transaction is ours
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        try:
            await _send(driver, begin)
            yield conn
            await _send(driver, "ROLLBACK")
        except BaseException:
            await conn.invalidate()
            raise


async def _send(driver: asyncpg.Connection, sql: str) -> None:
    """`sql` on the driver's connection, its errors reported as SQLAlchemy reports the parts':
    the API answers 503 and the live stream keeps going (a database restarting)."""
    try:
        await driver.execute(sql)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise OperationalError(sql, None, error) from error


async def _headline(
    conn: AsyncConnection, community: str, w: Window
) -> tuple[dict[str, Any], str | None, int]:
    row = (await conn.execute(HEADLINE_SQL, {"c": community, **w.params()})).one()
    *moves, top, active = row
    return totals_of(moves), top, int(active)


async def _content_and_events(
    conn: AsyncConnection, community: str, w: Window
) -> tuple[int, Any, dict[str, int]]:
    """Views first: reactions per view needs them."""
    views = await views_total(conn, community, w)
    reactions = await reactions_totals(conn, community, w, views)
    return views, reactions, await events_totals(conn, community, w)


def _answer(members: dict[str, Any], views: int, reactions: Any, events: dict[str, int],
            feedback: dict[str, Any], active: int, top: str | None) -> dict[str, Any]:
    return {"members": members, "views": views, "reactions": reactions, "events": events,
            "feedback": feedback, "active_members": active, "top_channel": top}
