"""Questions answered by reads alone need no transaction of their own."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


async def single_reads(conn: AsyncConnection) -> None:
    """On a connection not yet in a transaction, each statement runs by itself (autocommit):
    no BEGIN and ROLLBACK around a question's one or two reads (two of three round trips, ~0.1
    to 0.25 ms each on a busy machine). READ COMMITTED gives every statement its own snapshot
    anyway, so the answers are the same."""
    if not conn.in_transaction():
        await conn.execution_options(isolation_level="AUTOCOMMIT")
