"""Participants per event, kept so the events KPI reads a few hundred rows instead of every
attendance and every member's first one: `event_participants` (zone-free) holds per event its
attendances, walk-ins, and the members whose first attendance (facts/events.py: earliest
check-in, ties by event id) it is. A period's new participants are those of its events.

Attendances are insert-only, so attended and walk-ins add what the batch inserted. A member's
first attendance may move to an earlier one that arrives later: the statement that inserts the
batch's attendances also reads the stored first attendances of its members (same snapshot, as
before the statement), and each member whose first one moves adds +1 where it is now and -1
where it was. So `new` equals a count over `first_attendances` whatever the arrival order (a
count taken back may stay as a 0 row). A community's batches are applied one after another
(docs/adr/0005)."""

from __future__ import annotations

# The batch's candidates (each member's earliest inserted attendance) against what is stored.
_MOVED = (
    "fc AS (SELECT DISTINCT ON (community_id, member_id) community_id, member_id,"
    " checked_in_at, event_id FROM ins ORDER BY community_id, member_id, checked_in_at,"
    " event_id),"
    # Stored by key (`OFFSET 0`: joined flat, every stored first attendance was scanned).
    " fo AS (SELECT t.* FROM fc CROSS JOIN LATERAL (SELECT * FROM first_attendances t"
    " WHERE t.community_id = fc.community_id AND t.member_id = fc.member_id OFFSET 0) t),"
    " fm AS (SELECT c.community_id, c.checked_in_at AS at, c.event_id, 1 AS sign FROM fc c"
    " LEFT JOIN fo o USING (community_id, member_id) WHERE o.member_id IS NULL"
    " OR (c.checked_in_at, c.event_id) < (o.checked_in_at, o.event_id)"
    " UNION ALL SELECT o.community_id, o.checked_in_at, o.event_id, -1 FROM fc c"
    " JOIN fo o USING (community_id, member_id)"
    " WHERE (c.checked_in_at, c.event_id) < (o.checked_in_at, o.event_id))"
)


def _per_event(source: str) -> str:
    return (
        "INSERT INTO event_participants AS r (community_id, event_id, attended, walk_ins, new)"
        " SELECT community_id, event_id, sum(attended), sum(walk_ins), sum(new)"
        f" FROM {source} s GROUP BY 1, 2"
        " ON CONFLICT (community_id, event_id) DO UPDATE SET"
        " attended = r.attended + excluded.attended, walk_ins = r.walk_ins + excluded.walk_ins,"
        " new = r.new + excluded.new"
    )


# CTEs over `ins`, the attendances the batch inserted (facts/events.py).
DELTAS = [
    _MOVED,
    "fe AS (" + _per_event(
        "(SELECT community_id, event_id, 1 AS attended, CAST(walk_in AS int) AS walk_ins,"
        " 0 AS new FROM ins UNION ALL SELECT community_id, event_id, 0, 0, sign FROM fm)"
    ) + ")",
]
# Every community's participants per event from what is stored (a migration, a bulk load);
# first_attendances must be filled first.
EVENT_PARTICIPANTS_FROM_FACTS = _per_event(
    "(SELECT community_id, event_id, 1 AS attended, CAST(walk_in AS int) AS walk_ins, 0 AS new"
    " FROM attendances UNION ALL SELECT community_id, event_id, 0, 0, 1 FROM first_attendances)"
)

