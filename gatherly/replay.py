"""`gatherly replay <projection>`: drop a projection's read model and rebuild it from the stream.

The reset (read model emptied, bookkeeping zeroed, generation bumped) is one transaction. A running
projector sees the new generation, drops its consumer and starts again from the first message, so
the rebuild goes through the same code path as live traffic. If no projector runs, this command
runs one itself until it has caught up with the stream as it was when the replay began.
"""

from __future__ import annotations

import asyncio
import contextlib

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import text

from gatherly.bookkeeping import reset_bookkeeping
from gatherly.bus import Bus
from gatherly.db import create_engine
from gatherly.projection import Projection, ProjectionRunner
from gatherly.projector import Projector, runner_count
from gatherly.settings import Settings


async def reset(runner: ProjectionRunner) -> None:
    """Every partition of the projection, in one transaction."""
    name = runner.projection.name
    await runner.checkpoint()
    async with runner.engine.begin() as conn:
        await conn.execute(  # waits for batches in flight, then holds every other one off
            text("SELECT 1 FROM projection_checkpoint WHERE projection = :p FOR UPDATE"),
            {"p": name},
        )
        await runner.projection.reset(conn)
        await reset_bookkeeping(conn, name)


async def replay(settings: Settings, projection: Projection, *, show: bool = True) -> int:
    engine = create_engine(settings.database, projection.schema,
                           pool_size=runner_count(settings, projection) + 1)
    projector = Projector(settings, projection, engine, counted=False)
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="replay")
    try:
        await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds,
                                partitions=settings.stream_partitions)
        # Each partition is caught up once it has settled the last message on its own subjects.
        targets = [
            await bus.last_sequence() if runner.whole_stream
            else max([await bus.last_sequence_of(subject) for subject in runner.subjects])
            for runner in projector.runners
        ]
        for runner in projector.runners:
            await runner.checkpoint()
        await reset(projector.runners[0])
        # Runs the partitions no live projector holds; the others wait on their locks, harmlessly.
        driver = asyncio.create_task(projector.run())
        try:
            await _follow(projector, targets, show)
        finally:
            projector.stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
    finally:
        await bus.close()
        await engine.dispose()
    return 0


async def _follow(projector: Projector, targets: list[int], show: bool) -> None:
    columns = (
        TextColumn(f"rebuilding {projector.projection.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show) as progress:
        task = progress.add_task("replay", total=sum(targets))
        while True:
            settled = [(await runner.checkpoint())[0] for runner in projector.runners]
            progress.update(task, completed=sum(map(min, settled, targets)))
            if all(s >= t for s, t in zip(settled, targets, strict=True)):
                return
            await asyncio.sleep(0.2)
