"""Role coverage kept as counts: `role_holders` holds, per (community, role), the current
members (status 'member') who hold the role, so the question reads one row per role.

Whether a member counts for a role depends on two rows that change (their status in `members`,
the role in `member_roles`) through leaves, rejoins, assignments and removals. The projection
takes the batch's members' counts away before it writes them and adds them back after
(`recount`), so each count equals the GROUP BY over the stored rows after every batch, whatever
changed and in whatever order. Erasure renames the member in both rows and sets their status to
'erased' (facts/members.py), so an erased member holds their roles but counts for none."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.facts.common import execute

HELD = (
    "FROM member_roles r JOIN members m"
    " ON m.community_id = r.community_id AND m.member_id = r.member_id"
    " WHERE m.status = 'member'"
)
_ADD = (
    "INSERT INTO role_holders AS h (community_id, role, n) {select}"
    " ON CONFLICT (community_id, role) DO UPDATE SET n = h.n + excluded.n"
)
HOLDERS_FROM_FACTS = _ADD.format(select=f"SELECT r.community_id, r.role, count(*) {HELD}"
                                        " GROUP BY 1, 2")
# Per batch key, its roles and status looked up by key: `OFFSET 0` keeps the lookup per key.
# Joined flat, the planner (which guesses 10 keys for `unnest`) scanned and sorted every stored
# member twice a batch, a cost growing with the community, not with the batch.
_RECOUNT = _ADD.format(
    select="SELECT held.community_id, held.role, :sign * count(*) FROM (SELECT DISTINCT *"
           " FROM unnest(CAST(:c AS text[]), CAST(:m AS text[]))) AS k(c, m)"
           " CROSS JOIN LATERAL (SELECT r.community_id, r.role " + HELD
           + " AND r.community_id = k.c AND r.member_id = k.m OFFSET 0) held GROUP BY 1, 2")


async def recount(conn: AsyncConnection, members: set[tuple[str, str]], sign: int) -> None:
    """Add (`sign` 1) or take away (-1) what the (community, member) keys count now."""
    if members:
        await execute(conn, _RECOUNT, {"sign": sign, "c": [c for c, _ in members],
                                       "m": [m for _, m in members]})
