"""What every fact family shares: the time a fact happened, member identities after erasure,
and the set-based insert every family writes with."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.contracts import MEMBER_ERASED
from gatherly.db import driver_in_transaction
from gatherly.envelope import Envelope

# The zones of a source row `s`, as the rollups of rows that change join them.
ZONES = "JOIN kpi_zones z ON z.community_id = s.community_id"


def signed(counted: str) -> str:
    """A batch's rows after (+1, CTE `ins`) and before (-1, CTE `old`) its upsert, each as
    `counted` (with `{rows}` for the CTE) selects them: the deltas of a rollup of rows that
    change (facts/changing.py)."""
    return (f"(SELECT *, 1 AS sign FROM ({counted.format(rows='ins')}) a UNION ALL"
            f" SELECT *, -1 FROM ({counted.format(rows='old')}) b)")

# Where each type keeps the moment the fact happened (DESIGN §9: KPIs bucket by it).
TIME_FIELD = {
    "gatherly.member.joined": "joined_at",
    "gatherly.member.rejoined": "rejoined_at",
    "gatherly.member.left": "left_at",
    "gatherly.member.erased": "erased_at",
    "gatherly.event.cancelled": "cancelled_at",
    "gatherly.event.registered": "registered_at",
    "gatherly.event.attended": "checked_in_at",
    "gatherly.event.finished": "finished_at",
    "gatherly.event.followup_done": "done_at",
    "gatherly.content.published": "published_at",
    "gatherly.content.viewed": "viewed_at",
    "gatherly.content.views_counted": "as_of",
    "gatherly.content.reactions_counted": "as_of",
    "gatherly.content.archived": "archived_at",
    "gatherly.feedback.submitted": "submitted_at",
}

# Facts a member does themself, and where the acting member's id is (None: the subject).
ACTOR_FIELD: dict[str, str | None] = {
    "gatherly.member.joined": None,
    "gatherly.member.rejoined": None,
    "gatherly.member.profile_updated": None,
    "gatherly.content.published": "author_id",
    "gatherly.content.viewed": "member_id",
    "gatherly.reaction.added": "member_id",
    "gatherly.reaction.removed": "member_id",
    "gatherly.feedback.submitted": "member_id",
    "gatherly.feedback.answered": "by_member",
    "gatherly.feedback.resolved": "by_member",
    "gatherly.event.registered": "member_id",
    "gatherly.event.registration_cancelled": "member_id",
    "gatherly.event.waitlisted": "member_id",
    "gatherly.event.attended": "member_id",
    "gatherly.event.followup_done": "by_member",
    "gatherly.introduction.made": "by_member",
    "gatherly.thanks.sent": "by_member",
}

ERASED = MEMBER_ERASED


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fact_time(event: Envelope) -> datetime:
    """When the fact happened: its own time field, else `at`, else the envelope's time."""
    value = event.data.get(TIME_FIELD.get(event.type, "at"))
    return parse_time(value) if isinstance(value, str) else event.time


def actor(event: Envelope) -> str | None:
    if event.type not in ACTOR_FIELD:
        return None
    field = ACTOR_FIELD[event.type]
    value = event.subject if field is None else event.data.get(field)
    return str(value) if value else None


@functools.lru_cache(maxsize=1 << 16)  # a batch asks for each of its members several times
def digest(community_id: str, member_id: str) -> str:
    """One-way: an erased member's facts are recognised without keeping the id itself."""
    return hashlib.sha256(f"{community_id}:{member_id}".encode()).hexdigest()


def pseudonym(community_id: str, member_id: str) -> str:
    return "erased:" + digest(community_id, member_id)[:32]


class Identities:
    """Maps a member id to the key stored for it: the id, or a pseudonym once erased."""

    def __init__(self, erased: set[tuple[str, str]]) -> None:
        self.erased = erased

    def key(self, community_id: str, member_id: str) -> str:
        if self.erased and (community_id, digest(community_id, member_id)) in self.erased:
            return pseudonym(community_id, member_id)
        return member_id


async def insert_rows(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[Any]],
    conflict: str = "ON CONFLICT DO NOTHING",
    then: Sequence[str] = (),
    keys: Sequence[str] = (),
) -> None:
    """One INSERT ... SELECT FROM unnest(...) for the whole batch. An `ON CONFLICT DO UPDATE`
    caller must pass each key at most once (fold first): Postgres refuses a row touched twice.
    `then`: CTEs run in the same statement over `ins`, the rows actually inserted (the rollups'
    deltas; `:periods` is bound for them). With `keys` (an upsert's conflict columns), `old` holds
    the batch's rows as they were before the statement (facts/changing.py)."""
    rows = list(rows)
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns)
    params = {name: [row[i] for row in rows] for i, (name, _) in enumerate(columns)}
    insert = f"INSERT INTO {table} AS t ({names}) SELECT * FROM unnest({arrays}) {conflict}"
    if then:
        before = ""
        if keys:
            listed = ", ".join(keys)
            # Each key's stored row by key (`OFFSET 0`: joined flat, the planner, which guesses
            # 10 rows for `unnest`, hashed the batch and scanned the whole table each batch).
            matches = " AND ".join(f"t.{key} = k.{key}" for key in keys)
            before = (f"old AS (SELECT t.* FROM (SELECT DISTINCT {listed} FROM unnest({arrays})"
                      f" AS k({names})) k CROSS JOIN LATERAL (SELECT * FROM {table} t"
                      f" WHERE {matches} OFFSET 0) t), ")
        insert = f"WITH {before}ins AS ({insert} RETURNING t.*), {', '.join(then)} SELECT 1"
        params["periods"] = ["day", "week", "month"]
    await execute(conn, insert, params)


async def execute(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> None:
    """`sql` (`:name` parameters) on the transaction's own asyncpg connection, prepared once per
    connection by asyncpg's statement cache. Through SQLAlchemy's text() every statement paid
    its parameter processing and result set-up on the projection's one busy core."""
    driver, numbered, args = await _on_driver(conn, sql, params)
    await driver.execute(numbered, *args)


async def fetch(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows of `sql`, as `execute` runs it (asyncpg records: `row["column"]`)."""
    driver, numbered, args = await _on_driver(conn, sql, params)
    return list(await driver.fetch(numbered, *args))


async def _on_driver(
    conn: AsyncConnection, sql: str, params: dict[str, Any]
) -> tuple[Any, str, list[Any]]:
    driver = await driver_in_transaction(conn)
    numbered, names = positional(sql, conn.dialect)
    return driver, numbered, [params[name] for name in names]


@functools.lru_cache(maxsize=256)  # a batch writes the same few dozen statements every time
def positional(sql: str, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """`sql` with its `:name` parameters numbered as asyncpg takes them (SQLAlchemy's own
    compiler does it), and the names in that order."""
    compiled = text(sql).compile(dialect=dialect)
    return compiled.string, tuple(compiled.positiontup or ())
