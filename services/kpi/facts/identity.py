"""Activity (who did something when) and erasure. After `gatherly.member.erased` every row kept
for the member carries a one-way pseudonym instead of the id, and facts about the member that
arrive later (other aggregates may lag) are stored under that pseudonym at once."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.kpi.facts.common import (
    ERASED,
    Identities,
    actor,
    digest,
    fact_time,
    fetch,
    insert_rows,
    pseudonym,
)
from services.kpi.facts.rollups import deltas

# Every table that keeps a member id.
MEMBER_TABLES = (
    "member_changes", "members", "member_roles", "activity", "registrations", "attendances",
    "first_attendances",
)


async def identities(conn: AsyncConnection, events: list[Envelope]) -> Identities:
    """Which of this batch's members are erased, counting erasures inside the batch."""
    erased = {(e.community_id, digest(e.community_id, e.subject)) for e in events
              if e.type == ERASED}
    await insert_rows(
        conn, "erased_members", [("community_id", "text"), ("digest", "text")], erased
    )
    candidates = {(e.community_id, digest(e.community_id, m)) for e in events
                  for m in _member_ids(e)}
    if candidates:
        rows = await fetch(
            conn,
            "SELECT e.community_id, e.digest FROM erased_members e"
            " JOIN unnest(CAST(:c AS text[]), CAST(:d AS text[])) AS k(c, d)"
            " ON e.community_id = k.c AND e.digest = k.d",
            {"c": [c for c, _ in candidates], "d": [d for _, d in candidates]},
        )
        erased |= {(r["community_id"], r["digest"]) for r in rows}
    return Identities(erased)


def _member_ids(e: Envelope) -> set[str]:
    ids = {str(e.data[f]) for f in ("member_id", "author_id", "by_member") if e.data.get(f)}
    if e.type.startswith("gatherly.member."):
        ids.add(e.subject)
    return ids


async def record_activity(
    conn: AsyncConnection, events: list[Envelope], ids: Identities
) -> None:
    """One row per member and minute they did anything: enough for any day/week/month bucket
    in any time zone (offsets are whole minutes)."""
    rows = set()
    for e in events:
        member = actor(e)
        if member:
            minute = fact_time(e).astimezone(UTC).replace(second=0, microsecond=0)
            rows.add((e.community_id, ids.key(e.community_id, member), minute))
    await insert_rows(
        conn, "activity",
        [("community_id", "text"), ("member_id", "text"), ("at", "timestamptz")],
        rows,
        then=deltas("activity"),
    )


_RENAME = (
    "UPDATE {table} t SET member_id = k.p"
    " FROM unnest(CAST(:c AS text[]), CAST(:m AS text[]), CAST(:p AS text[])) AS k(c, m, p)"
    " WHERE t.community_id = k.c AND t.member_id = k.m"
)


async def erase(conn: AsyncConnection, events: list[Envelope]) -> None:
    """Replace the ids of members erased in this batch by their pseudonym, everywhere."""
    erased = {(e.community_id, e.subject) for e in events if e.type == ERASED}
    if not erased:
        return
    params = {
        "c": [c for c, _ in erased],
        "m": [m for _, m in erased],
        "p": [pseudonym(c, m) for c, m in erased],
    }
    for table in MEMBER_TABLES:
        await conn.execute(text(_RENAME.format(table=table)), params)

