"""`gatherly project <name>`: one process running every partition of a projection it can lead.

Each partition has its own runner and leader lock (`gatherly.projection`), so two processes never
run one partition at once. To split the partitions rather than let the first process hold all of
them, every process also holds a shared "member" advisory lock of the projection; Postgres counts
the holders, and a process leads at most its fair share (partitions / processes, rounded up),
handing its highest partitions over when a new process joins. When a process dies, Postgres ends
its sessions, its locks go with them, the member count drops, and the others take the orphaned
partitions within a couple of lock retries (a second each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.collector import tune_collector
from gatherly.db import create_engine
from gatherly.metrics import projector_metrics_port, serve_metrics
from gatherly.partition import Partition, fair_share, members_key, partitions
from gatherly.projection import Projection, ProjectionRunner
from gatherly.settings import Settings, to_libpq_url

log = logging.getLogger(__name__)

MEMBERS_SQL = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND mode = 'ShareLock' AND classid = 0 AND objid::bigint = $1 AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
WATCH_SECONDS = 1.0


def runner_count(settings: Settings, projection: Projection) -> int:
    """The projection's partitions: the stream's, if the projection is a partitioned one."""
    partitioned = projection.name in settings.partitioned_projections
    return settings.stream_partitions if partitioned else 1


class Share:
    """This process's turn at a projection's partitions: the Turn its runners ask."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.members = 1
        self.held: set[int] = set()

    @property
    def quota(self) -> int:
        return fair_share(self.count, self.members)

    def may_take(self, partition: Partition) -> bool:
        return len(self.held) < self.quota

    def must_yield(self, partition: Partition) -> bool:
        """Over quota, the highest partitions go first, so every runner agrees which."""
        return partition.index in sorted(self.held)[self.quota:]

    def holding(self, partition: Partition, held: bool) -> None:
        if held:
            self.held.add(partition.index)
        else:
            self.held.discard(partition.index)


class Projector:
    """Every partition of one projection, as runners sharing a stop signal and a Share."""

    def __init__(
        self, settings: Settings, projection: Projection, engine: AsyncEngine, *,
        counted: bool = True,
    ) -> None:
        """`counted` False (a replay) runs only partitions nobody leads and never makes the
        projector processes hand theirs over."""
        self.settings, self.projection = settings, projection
        self.share = Share(runner_count(settings, projection))
        self.counted = counted
        self.stopping = asyncio.Event()
        self.runners = [
            ProjectionRunner(settings, projection, engine, partition=partition, turn=self.share)
            for partition in partitions(self.share.count)
        ]
        for runner in self.runners:
            runner.stopping = self.stopping

    @property
    def applied(self) -> int:
        return sum(runner.applied for runner in self.runners)

    async def run(self) -> None:
        work = [asyncio.create_task(runner.run()) for runner in self.runners]
        if self.share.count > 1 and self.counted:
            work.append(asyncio.create_task(self._count_members()))
        try:
            await asyncio.gather(*work)
        finally:
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)

    async def _count_members(self) -> None:
        """Hold the member lock and keep `share.members` current; reconnect after a failure."""
        key = members_key(self.projection.name)
        while not self.stopping.is_set():
            try:
                conn = await asyncpg.connect(to_libpq_url(self.settings.database), timeout=5)
                try:
                    await conn.execute("SELECT pg_advisory_lock_shared($1)", key)
                    while not self.stopping.is_set():
                        self.share.members = max(1, int(await conn.fetchval(MEMBERS_SQL, key)))
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.stopping.wait(), WATCH_SECONDS)
                finally:
                    await conn.close()
            except (OSError, TimeoutError, asyncpg.PostgresError) as error:
                log.warning("projection %s members: %s; retrying", self.projection.name, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), WATCH_SECONDS)


async def run_projection(settings: Settings, projection: Projection) -> None:
    """`gatherly project <name>`: run until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = create_engine(settings.database, projection.schema,
                           pool_size=runner_count(settings, projection) + 1)
    projector = Projector(settings, projection, engine)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, projector.stopping.set)
    serve_metrics(settings.host, projector_metrics_port(settings, projection.name))
    tune_collector()
    try:
        await projector.run()
    finally:
        await engine.dispose()
