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
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Row, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kpi.queries import events
from services.kpi.queries.beyond import ACTIVE
from services.kpi.queries.channels import (
    ATTENDANCES,
    FEEDBACK,
    JOINS,
    REACTIONS_ADDED,
    REGISTRATIONS,
)
from services.kpi.queries.feedback import feedback_totals
from services.kpi.queries.members import TOTALS, totals_of
from services.kpi.queries.speed import FIRSTS, as_float
from services.kpi.queries.window import Window, ratio
from services.kpi.queries.zones import ZONED, ensure_zone, whole_months_and_days

# Connections one summary reads on, one statement each (feedback two: its ranks come from its
# rollups): members, active members, the first reactions' median and each channel's joins,
# views and feedback on the first; platforms' counts, reactions added, events and each
# channel's other measures on the second; feedback on the third. The top channel is ranked here
# from the first two's sums per channel, so the parts take about as long each at 1M members
# (docs/benchmarks.md, seventh session).
WIDTH = 3


def _per_channel(sources: str) -> str:
    """Per channel, the sum of `sources`' (channel, n) rows: two arrays in one row."""
    return ("SELECT array_agg(channel) AS channels, array_agg(n) AS counts FROM"
            f" (SELECT channel, CAST(sum(n) AS bigint) AS n FROM ({sources}) s GROUP BY 1) g")


def _counter(rollup: str) -> str:
    """A platforms' counter rollup per channel (whole months from `<rollup>_months`): every
    snapshot's count (the totals), and the count that ranks the channel (NULL when none of its
    days keeps a snapshot: not ranked). A day or month of 0 snapshots counts 0, so the months'
    sums rank as the days' did."""
    return ("SELECT channel, sum(n) AS n, sum(n) FILTER (WHERE snapshots > 0) AS ranked FROM ("
            + whole_months_and_days("channel, n, snapshots", rollup) + ") s GROUP BY 1")


# Views are read once, for the views and the ranking alike: whole months from `view_months`.
HEADLINE = (
    "WITH v AS (SELECT channel, sum(n) AS n FROM ("
    + whole_months_and_days("channel, n", "view") + ") d GROUP BY 1)"
    f" SELECT m.*, ({ACTIVE}) AS active,"
    " (SELECT CAST(coalesce(sum(n), 0) AS bigint) FROM v) AS viewed, f.f50, c.*"
    f" FROM ({TOTALS}) m, ({FIRSTS}) f, ("
    + _per_channel(f"{JOINS} UNION ALL SELECT channel, n FROM v UNION ALL {FEEDBACK}") + ") c"
)
CONTENT_AND_EVENTS = (
    f"WITH vc AS ({_counter('view_counter')}), rc AS ({_counter('reaction_counter')}),"
    f" ra AS (SELECT channel, sum(n) AS n FROM ({REACTIONS_ADDED}) a GROUP BY 1)"
    " SELECT (SELECT sum(n) FROM vc) AS counted_views, (SELECT sum(n) FROM ra) AS added,"
    f" (SELECT sum(n) FROM rc) AS counted, e.*, c.* FROM ({events.TOTALS}) e, ("
    + _per_channel("SELECT channel, ranked AS n FROM vc WHERE ranked IS NOT NULL UNION ALL"
                   " SELECT channel, ranked FROM rc WHERE ranked IS NOT NULL UNION ALL"
                   f" SELECT channel, n FROM ra UNION ALL {REGISTRATIONS}"
                   f" UNION ALL {ATTENDANCES}") + ") c"
)
# Built once: text() scans a statement for its parameters each time it is built.
HEADLINE_SQL, CONTENT_AND_EVENTS_SQL = text(HEADLINE), text(CONTENT_AND_EVENTS)
# The snapshot, and whether the window's zone is registered (zones.ensure_zone's check).
EXPORT_SQL = text(f"SELECT pg_export_snapshot() AS snapshot, {ZONED} AS zoned")
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
        """The summary, the window's zone registered first if it is new (zones.ensure_zone)."""
        if self._fan_out.locked():
            await ensure_zone(self.engine, community, w.tz)
            return await self.one_by_one(community, w, sla_hours)
        async with self._fan_out:
            return await self.side_by_side(community, w, sla_hours)

    async def side_by_side(self, community: str, w: Window, sla_hours: float) -> dict[str, Any]:
        """The parts at once. The zone is checked in the snapshot's round trip, not in one of its
        own before the question (0.3-0.7 ms at 1M members); a zone's first question registers
        it and fills its rollups, then reads them one by one."""
        async with _reading(self.engine) as first:
            export = (await first.execute(EXPORT_SQL, {"c": community, "tz": w.tz})).one()
            if export.zoned:
                # `first` stays open (and its snapshot importable) until every part is done.
                headline, content, feedback = await _all(
                    _headline(first, community, w),
                    self._at(export.snapshot,
                             lambda conn: _content_and_events(conn, community, w)),
                    self._at(export.snapshot,
                             lambda conn: feedback_totals(conn, community, w, sla_hours)),
                )
                return _answer(headline, content, feedback)
        await ensure_zone(self.engine, community, w.tz)
        return await self.one_by_one(community, w, sla_hours)

    async def one_by_one(self, community: str, w: Window, sla_hours: float) -> dict[str, Any]:
        async with _reading(self.engine) as conn:
            headline = await _headline(conn, community, w)
            content = await _content_and_events(conn, community, w)
            feedback = await feedback_totals(conn, community, w, sla_hours)
        return _answer(headline, content, feedback)

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


async def _headline(conn: AsyncConnection, community: str, w: Window) -> Row[Any]:
    return (await conn.execute(HEADLINE_SQL, {"c": community, **w.params()})).one()


async def _content_and_events(conn: AsyncConnection, community: str, w: Window) -> Row[Any]:
    return (await conn.execute(CONTENT_AND_EVENTS_SQL, {"c": community, **w.params()})).one()


def _answer(headline: Row[Any], content: Row[Any], feedback: dict[str, Any]) -> dict[str, Any]:
    views = int(headline.viewed) + int(content.counted_views or 0)
    added = int(content.added or 0)
    reactions = {"added": added, "per_view": ratio(added + int(content.counted or 0), views),
                 "first_reaction_median_seconds": as_float(headline.f50)}
    return {"members": totals_of(headline[:4]), "views": views, "reactions": reactions,
            "events": events.totals_of(content), "feedback": feedback,
            "active_members": int(headline.active), "top_channel": _top(headline, content)}


def _top(*parts: Row[Any]) -> str | None:
    """The channel `channels_kpi` ranks first: the largest sum, then the first name in code
    point order (Python's)."""
    sums: dict[str, int] = defaultdict(int)
    for part in parts:
        for channel, n in zip(part.channels or (), part.counts or (), strict=True):
            sums[channel] += n
    return min(sums, key=lambda channel: (-sums[channel], channel), default=None)
