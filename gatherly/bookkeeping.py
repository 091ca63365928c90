"""A projection's bookkeeping tables: the checkpoint of each partition, and the last applied
version of each aggregate (shared by the partitions: a community, hence an aggregate, lives in
exactly one of them)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.db import driver_in_transaction
from gatherly.envelope import Envelope

# A batch's statements, bound once. Whatever a batch costs regardless of its size is paid per
# fact at join rates (one or two facts a batch), so each is one round trip and the two after
# the lock go to asyncpg directly: through SQLAlchemy each cost a few times its driver's CPU.
_LOCK = (
    "SELECT stream_seq, generation{} FROM projection_checkpoint"
    " WHERE projection = :p AND partition = :q FOR UPDATE"
)
# `SET LOCAL synchronous_commit = off` as an expression: the same setting, read at commit.
LOCK_CHECKPOINT = {True: text(_LOCK.format("")),
                   False: text(_LOCK.format(", set_config('synchronous_commit', 'off', true)"))}
APPLIED_VERSIONS = (
    "SELECT stream_id, version FROM projection_applied"
    " WHERE projection = $1 AND stream_id = ANY(CAST($2 AS text[]))"
)
SAVE_PROGRESS = (
    "WITH versions AS (INSERT INTO projection_applied (projection, stream_id, version)"
    " SELECT $1, * FROM unnest(CAST($3 AS text[]), CAST($4 AS int[]))"
    " ON CONFLICT (projection, stream_id) DO UPDATE SET version = excluded.version)"
    " UPDATE projection_checkpoint SET stream_seq = $5, updated_at = now()"
    " WHERE projection = $1 AND partition = $2"
)


async def lock_checkpoint(
    conn: AsyncConnection, projection: str, partition: str, *, durable: bool = True
) -> tuple[int, int]:
    """(stream sequence, generation) of the partition, row-locked until commit: every transaction
    that changes this partition (a second runner, a replay's reset) waits on it. `durable` False:
    the transaction's commit does not wait for the disk. The batch's first statement: through
    SQLAlchemy, which begins the transaction with it."""
    row = (await conn.execute(LOCK_CHECKPOINT[durable], {"p": projection, "q": partition})).one()
    return int(row.stream_seq), int(row.generation)


async def applied_versions(
    conn: AsyncConnection, projection: str, streams: set[str]
) -> dict[str, int]:
    if not streams:
        return {}
    driver = await driver_in_transaction(conn)
    rows = await driver.fetch(APPLIED_VERSIONS, projection, list(streams))
    return {row["stream_id"]: row["version"] for row in rows}


async def save_progress(
    conn: AsyncConnection, projection: str, partition: str, stream_seq: int,
    applied: list[Envelope],
) -> None:
    """The last version of every aggregate `applied` touched and the partition's checkpoint, in
    one statement."""
    latest: dict[str, int] = {}
    for envelope in applied:
        latest[envelope.subject] = max(latest.get(envelope.subject, 0), envelope.sequence)
    await (await driver_in_transaction(conn)).execute(
        SAVE_PROGRESS, projection, partition, list(latest), list(latest.values()), stream_seq)


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
