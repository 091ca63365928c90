"""Beyond the six: active members, retention by monthly join cohort, role coverage and event
follow-up completion."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kpi.queries.window import Window, advance, ratio, truncate, whole_months
from services.kpi.queries.zones import months_and_days

ROLES = (
    "mentor", "partner", "storyteller", "historian", "hero", "celebrity", "provider", "greeter",
    "guide", "catalyst", "ambassador", "scout",
)
ONE_DAY = timedelta(days=1)
TASKS = (
    "thanks_sent", "materials_sent", "feedback_collected", "members_introduced",
    "invited_to_community", "history_written", "promoted",
)


async def active_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """Distinct members who did anything (see docs/kpi.md for which facts) per period: a period
    the window holds whole is read from `active_counts`; one it cuts, and the window's own
    total, from `active_gaps` (facts/active.py)."""
    params = {"c": community, "tz": w.tz, "g": w.granularity,
              "first": truncate(w.first, w.granularity), "last": w.last}
    per = {r.start: int(r.n) for r in await conn.execute(
        text("SELECT start, n FROM active_counts WHERE community_id = :c AND tz = :tz"
             " AND period = :g AND start >= :first AND start <= :last"),
        params,
    )}
    periods = []
    for start in w.buckets():
        first, last = max(start, w.first), min(advance(start, w.granularity), w.last + ONE_DAY)
        whole = first == start and last == advance(start, w.granularity)
        count = per.get(start, 0) if whole else await _distinct(conn, community, w.tz, first,
                                                                 last - ONE_DAY)
        periods.append({"start": start.isoformat(), "active": count})
    total = await _distinct(conn, community, w.tz, w.first, w.last)
    return {"active": total, "periods": periods}


GAPS = months_and_days("n FROM active_gaps",
                       "community_id = :c AND tz = :tz AND previous < :first")
# Distinct members active from :first to :last (the window's: `Window.params`).
ACTIVE = f"SELECT CAST(coalesce(sum(n), 0) AS bigint) FROM ({GAPS}) g"
ACTIVE_SQL = text(ACTIVE)  # built once: text() scans for parameters each time


async def active_total(conn: AsyncConnection, community: str, w: Window) -> int:
    """Distinct members active in the window (the summary's number)."""
    return await _distinct(conn, community, w.tz, w.first, w.last)


async def _distinct(conn: AsyncConnection, community: str, tz: str, first: date,
                    last: date) -> int:
    """Distinct members active from `first` to `last` (inclusive): those with an active day in
    it whose previous active day is before it; whole months from the monthly rows."""
    m1, m2 = whole_months(first, last)
    found = await conn.scalar(
        ACTIVE_SQL,
        {"c": community, "tz": tz, "first": first, "last": last, "m1": m1, "m2": m2},
    )
    return int(found or 0)


async def retention_kpi(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
    """For each month in the window, the members whose first join fell in it, and the share of
    them still members at the end of that month and of every later month up to the window's:
    the prefix sums of `retention_months` (facts/retention.py)."""
    months = Window(w.first, w.last, "month", w.tz).buckets()
    joined: dict[date, int] = defaultdict(int)
    changed: dict[date, dict[date, int]] = defaultdict(dict)
    for r in await conn.execute(
        text("SELECT cohort, month, joined, retained FROM retention_months"
             " WHERE community_id = :c AND tz = :tz AND cohort >= :first AND cohort <= :last"
             " AND month <= :last"),
        {"c": community, "tz": w.tz, "first": months[0], "last": months[-1]},
    ):
        joined[r.cohort] += r.joined
        changed[r.cohort][r.month] = r.retained
    return {"cohorts": [
        {"month": m.isoformat(), "members": joined[m],
         "retained": [ratio(n, joined[m]) for n in _still_in(changed[m], months, m)]}
        for m in months
    ]}


def _still_in(changed: dict[date, int], months: list[date], cohort: date) -> list[int]:
    """The cohort's members in at the end of each month from its own: the running sum of the
    signed status changes (a member's status only changes in a month they have a change in)."""
    counts, still = [], 0
    for month in months:
        if month >= cohort:
            still += changed.get(month, 0)
            counts.append(still)
    return counts


async def roles_kpi(conn: AsyncConnection, community: str) -> dict[str, Any]:
    """Current members per role, and the roles no current member holds (`role_holders`,
    facts/roles.py)."""
    held = {r.role: int(r.n) for r in await conn.execute(
        text("SELECT role, n FROM role_holders WHERE community_id = :c AND n <> 0"),
        {"c": community},
    )}
    return {"roles": {role: held.get(role, 0) for role in sorted(set(ROLES) | set(held))},
            "empty": [role for role in ROLES if not held.get(role)]}


async def followups_kpi(
    conn: AsyncConnection, community: str, w: Window, within_days: int
) -> dict[str, Any]:
    """Of the events finished in the window (not cancelled), the share whose duties were all
    done within `within_days` of finishing: the assigned tasks, or all seven if none was."""
    rows = await conn.execute(
        text("SELECT e.event_id, e.finished_at, f.task, f.assigned, f.done_at"
             " FROM community_events e LEFT JOIN followups f"
             " ON f.community_id = e.community_id AND f.event_id = e.event_id"
             " WHERE e.community_id = :c AND e.cancelled_at IS NULL"
             " AND e.finished_at >= :start AND e.finished_at < :end"),
        {"c": community, **w.params()},
    )
    finished: dict[str, datetime] = {}
    tasks: dict[str, dict[str, tuple[bool, datetime | None]]] = defaultdict(dict)
    for r in rows:
        finished[r.event_id] = r.finished_at
        if r.task:
            tasks[r.event_id][r.task] = (r.assigned, r.done_at)
    complete = sum(_complete(finished[e], tasks[e], within_days) for e in finished)
    return {"finished": len(finished), "completed": complete,
            "within_days": within_days, "completion": ratio(complete, len(finished))}


def _complete(
    finished_at: datetime, tasks: dict[str, tuple[bool, datetime | None]], within_days: int
) -> bool:
    required = [t for t, (assigned, _) in tasks.items() if assigned] or list(TASKS)
    deadline = finished_at + timedelta(days=within_days)
    return all((done := tasks.get(t, (False, None))[1]) is not None and done <= deadline
               for t in required)
