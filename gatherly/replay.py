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

from gatherly.bus import Bus
from gatherly.db import create_engine
from gatherly.projection import Projection, ProjectionRunner
from gatherly.settings import Settings


async def reset(runner: ProjectionRunner) -> None:
    name = runner.projection.name
    await runner.checkpoint()
    async with runner.engine.begin() as conn:
        await conn.execute(  # waits for a batch in flight, then holds every other one off
            text("SELECT 1 FROM projection_checkpoint WHERE projection = :p FOR UPDATE"),
            {"p": name},
        )
        await runner.projection.reset(conn)
        await conn.execute(
            text("DELETE FROM projection_applied WHERE projection = :p"), {"p": name}
        )
        await conn.execute(
            text(
                "UPDATE projection_checkpoint SET stream_seq = 0, generation = generation + 1,"
                " updated_at = now() WHERE projection = :p"
            ),
            {"p": name},
        )


async def replay(settings: Settings, projection: Projection, *, show: bool = True) -> int:
    engine = create_engine(settings.database, projection.schema, pool_size=2)
    runner = ProjectionRunner(settings, projection, engine)
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="replay")
    try:
        await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
        target = await bus.last_sequence()
        await reset(runner)
        # Runs only if no live projector holds the leader lock; otherwise it waits, harmlessly.
        driver = asyncio.create_task(runner.run())
        try:
            await _follow(runner, target, show)
        finally:
            runner.stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
    finally:
        await bus.close()
        await engine.dispose()
    return 0


async def _follow(runner: ProjectionRunner, target: int, show: bool) -> None:
    columns = (
        TextColumn(f"rebuilding {runner.projection.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show) as progress:
        task = progress.add_task("replay", total=target)
        while True:
            settled, _ = await runner.checkpoint()
            progress.update(task, completed=min(settled, target))
            if settled >= target:
                return
            await asyncio.sleep(0.2)
