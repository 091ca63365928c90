"""Erasure's reads and writes: which members are erased, and forgetting their words.

A write of words (feedback, an answer, a thanks) and an erasure of one of its people never pass
each other: both take the community's erasure lock for their transaction, the write shared and
the erasure exclusive, and each reads or changes the tables only in a statement after the lock.
In READ COMMITTED a statement sees what committed before it began, so whichever comes second
sees the first: the write finds the erasure and keeps no words, or the erasure finds the words
and clears them. Without the lock both could read before the other committed and the words
would stay. A lock per community, not per member: a batch of thousands of erasures (a sweep)
takes one lock for each of its few communities, not thousands, which Postgres's shared lock
table would have to hold at once; writes only share it, so they never wait for each other,
only for an erasure's short transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.erasure import Erasure

# The two-key form: a lock space of its own, apart from the single-key locks (projection
# leaders, KPI zones) held in the same database. A hash collision only makes two communities
# wait for each other's erasures.
LOCK_SHARED = text("SELECT pg_advisory_xact_lock_shared(hashtext('engagement.erasure'),"
                   " hashtext(:c))")
# One order for every transaction, so two batches of erasures never deadlock.
LOCK_EXCLUSIVE = text(
    "SELECT count(pg_advisory_xact_lock(hashtext('engagement.erasure'), hashtext(c)))"
    " FROM (SELECT DISTINCT unnest(CAST(:cs AS text[])) AS c ORDER BY 1) cs"
)
ERASED_AMONG = text(
    "SELECT member_id::text FROM erased_members"
    " WHERE community_id = :c AND member_id = ANY(CAST(:ms AS uuid[]))"
)
RECORD = text(
    "INSERT INTO erased_members (community_id, member_id, erased_at)"
    " SELECT * FROM unnest(CAST(:cs AS text[]), CAST(:ms AS uuid[]),"
    " CAST(:ats AS timestamptz[])) ON CONFLICT DO NOTHING"
)
# Each finds only rows that still hold words (the migration's partial indexes), so an erasure
# seen again changes nothing. A feedback's answer goes with the member's text: it may quote it.
_OF_ERASED = "FROM unnest(CAST(:cs AS text[]), CAST(:ms AS uuid[])) AS e(c, m) WHERE"
# A thanks' reason is in its event too (the catalogue's `gatherly.thanks.sent`): the log's copy
# goes first, found through the thanks rows that still hold one.
_THANKS_EVENTS = (
    "UPDATE events ev SET data = ev.data - 'reason' FROM thanks t, unnest(CAST(:cs AS text[]),"
    " CAST(:ms AS uuid[])) AS e(c, m) WHERE t.community_id = e.c AND t.{who} = e.m"
    " AND t.reason IS NOT NULL AND ev.stream_id = CAST(t.id AS text)"
    " AND ev.type = 'gatherly.thanks.sent'"
)
FORGET = [
    text(_THANKS_EVENTS.format(who="to_member")),
    text(_THANKS_EVENTS.format(who="by_member")),
    text(f"UPDATE feedback f SET body = '', answer = NULL {_OF_ERASED}"
         " f.community_id = e.c AND f.member_id = e.m AND f.body <> ''"),
    text(f"UPDATE feedback f SET answer = NULL {_OF_ERASED}"
         " f.community_id = e.c AND f.answered_by = e.m AND f.answer IS NOT NULL"),
    text(f"UPDATE thanks t SET reason = NULL {_OF_ERASED}"
         " t.community_id = e.c AND t.to_member = e.m AND t.reason IS NOT NULL"),
    text(f"UPDATE thanks t SET reason = NULL {_OF_ERASED}"
         " t.community_id = e.c AND t.by_member = e.m AND t.reason IS NOT NULL"),
]


async def erased_among(
    conn: AsyncConnection, community_id: str, people: Iterable[str | None]
) -> frozenset[str]:
    """Which of `people` are erased; holds the community's erasure lock (shared) until the
    transaction ends."""
    members = sorted({person for person in people if person})
    if not members:
        return frozenset()
    await conn.execute(LOCK_SHARED, {"c": community_id})
    rows = await conn.execute(ERASED_AMONG, {"c": community_id, "ms": members})
    return frozenset(rows.scalars().all())


async def forget(conn: AsyncConnection, erasures: list[Erasure]) -> None:
    """Remember the erasures and clear the words of and about those members. Idempotent."""
    if not erasures:
        return
    pairs = {"cs": [e.community_id for e in erasures], "ms": [e.member_id for e in erasures]}
    await conn.execute(LOCK_EXCLUSIVE, {"cs": pairs["cs"]})
    await conn.execute(RECORD, {**pairs, "ats": [e.erased_at for e in erasures]})
    for statement in FORGET:
        await conn.execute(statement, pairs)
