"""A projection's bookkeeping tables: the checkpoint of each partition, and the last applied
version of each aggregate (shared by the partitions: a community, hence an aggregate, lives in
exactly one of them)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import Envelope


async def lock_checkpoint(
    conn: AsyncConnection, projection: str, partition: str
) -> tuple[int, int]:
    """(stream sequence, generation) of the partition, row-locked until commit: every transaction
    that changes this partition (a second runner, a replay's reset) waits on it."""
    row = (
        await conn.execute(
            text(
                "SELECT stream_seq, generation FROM projection_checkpoint"
                " WHERE projection = :p AND partition = :q FOR UPDATE"
            ),
            {"p": projection, "q": partition},
        )
    ).one()
    return int(row.stream_seq), int(row.generation)


async def save_checkpoint(
    conn: AsyncConnection, projection: str, partition: str, stream_seq: int
) -> None:
    await conn.execute(
        text(
            "UPDATE projection_checkpoint SET stream_seq = :s, updated_at = now()"
            " WHERE projection = :p AND partition = :q"
        ),
        {"p": projection, "q": partition, "s": stream_seq},
    )


async def read_checkpoint(engine: AsyncEngine, projection: str, partition: str) -> tuple[int, int]:
    """(stream sequence settled so far, generation), creating the row on first use. A new
    partition row starts at the generation its projection's other rows have (a replay bumps
    them all), so a partition added later is not mistaken for a reset."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO projection_checkpoint (projection, partition, generation)"
                " SELECT :p, :q, coalesce(max(generation), 1) FROM projection_checkpoint"
                " WHERE projection = :p ON CONFLICT DO NOTHING"
            ),
            {"p": projection, "q": partition},
        )
        row = (
            await conn.execute(
                text(
                    "SELECT stream_seq, generation FROM projection_checkpoint"
                    " WHERE projection = :p AND partition = :q"
                ),
                {"p": projection, "q": partition},
            )
        ).one()
    return int(row.stream_seq), int(row.generation)


async def applied_versions(
    conn: AsyncConnection, projection: str, streams: set[str]
) -> dict[str, int]:
    if not streams:
        return {}
    result = await conn.execute(
        text(
            "SELECT stream_id, version FROM projection_applied"
            " WHERE projection = :p AND stream_id = ANY(:s)"
        ),
        {"p": projection, "s": list(streams)},
    )
    return {row.stream_id: row.version for row in result}


async def record_versions(conn: AsyncConnection, projection: str, events: list[Envelope]) -> None:
    latest: dict[str, int] = {}
    for envelope in events:
        latest[envelope.subject] = max(latest.get(envelope.subject, 0), envelope.sequence)
    if not latest:
        return
    await conn.execute(
        text(
            "INSERT INTO projection_applied (projection, stream_id, version)"
            " SELECT :p, * FROM unnest(CAST(:s AS text[]), CAST(:v AS int[]))"
            " ON CONFLICT (projection, stream_id) DO UPDATE SET version = excluded.version"
        ),
        {"p": projection, "s": list(latest), "v": list(latest.values())},
    )


async def reset_bookkeeping(conn: AsyncConnection, projection: str) -> None:
    """Every partition back to the stream's start under a new generation (the caller holds the
    checkpoint rows and empties the read model in the same transaction)."""
    await conn.execute(text("DELETE FROM projection_applied WHERE projection = :p"),
                       {"p": projection})
    await conn.execute(
        text(
            "UPDATE projection_checkpoint SET stream_seq = 0, generation = generation + 1,"
            " updated_at = now() WHERE projection = :p"
        ),
        {"p": projection},
    )
