"""Member facts: every join, rejoin and leave kept by (member, version); each member's current
channel and status (member, left, or erased: final, as in the members service, which refuses
every later change); roles held. A member's facts come in order (one aggregate), so a leave
takes the channel of the join or rejoin before it. Retention cohorts (facts/retention.py) and
role coverage (facts/roles.py) are kept by the same writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.kpi.facts import retention, roles
from services.kpi.facts.common import ERASED, Identities, fact_time, fetch, insert_rows
from services.kpi.facts.rollups import deltas

CHANGES = {
    "gatherly.member.joined": "joined",
    "gatherly.member.rejoined": "rejoined",
    "gatherly.member.left": "left",
}
ROLES = {"gatherly.member.role_assigned": True, "gatherly.member.role_removed": False}


@dataclass
class MemberState:
    channel: str
    status: str
    first_joined_at: datetime


@dataclass
class MemberFold:
    changes: list[tuple[str, str, int, str, str, datetime]] = field(default_factory=list)
    states: dict[tuple[str, str], MemberState] = field(default_factory=dict)
    roles: dict[tuple[str, str, str], bool] = field(default_factory=dict)


async def apply(conn: AsyncConnection, events: list[Envelope], ids: Identities) -> None:
    relevant = [e for e in events if e.type in CHANGES or e.type in ROLES or e.type == ERASED]
    if not relevant:
        return
    fold = MemberFold()
    keys = {(e.community_id, ids.key(e.community_id, e.subject)) for e in relevant}
    fold.states, role_holders = await _load_states(conn, keys)
    touched: set[tuple[str, str]] = set()
    for event in relevant:
        member = (event.community_id, ids.key(event.community_id, event.subject))
        if event.type in ROLES:
            fold.roles[(*member, str(event.data["role"]))] = ROLES[event.type]
            continue
        if event.type == ERASED:
            _erase(fold, member)
        else:
            _change(fold, member, event)
        touched.add(member)
    # Role coverage: these members' counts go before the writes and come back after them. A
    # member with no role stored and none given in the batch counts 0 before and after.
    counted = role_holders | {(c, m) for c, m, _ in fold.roles}
    await roles.recount(conn, counted, -1)
    await _write(conn, fold, touched)
    await roles.recount(conn, counted, 1)


def _change(fold: MemberFold, member: tuple[str, str], event: Envelope) -> None:
    kind, at = CHANGES[event.type], fact_time(event)
    state = fold.states.get(member)
    if kind == "left":
        channel = state.channel if state else "unknown"
    else:
        channel = str(event.data.get("channel") or "unknown")
    if state is None:
        state = fold.states[member] = MemberState(channel, "member", at)
    state.channel = channel
    if state.status != "erased":
        state.status = "left" if kind == "left" else "member"
    fold.changes.append((*member, event.sequence, kind, channel, at))


def _erase(fold: MemberFold, member: tuple[str, str]) -> None:
    """The members service lists an erased member as neither active nor left and keeps their
    roles: they stop counting for role coverage (facts/roles.py counts status 'member'). Their
    joins and leaves stay, as in the members service's history, so member totals do not move."""
    state = fold.states.get(member)
    if state is not None:  # no join known: no row, nothing counted
        state.status = "erased"


async def _load_states(
    conn: AsyncConnection, keys: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], MemberState], set[tuple[str, str]]]:
    """The stored state of each member that has one, and which of them hold a role (a role row
    may exist without a member row: looked up on its own)."""
    rows = await fetch(
        conn,
        "SELECT k.c, k.m, m.channel, m.status, m.first_joined_at, EXISTS (SELECT 1"
        " FROM member_roles r WHERE r.community_id = k.c AND r.member_id = k.m) AS holds"
        " FROM unnest(CAST(:c AS text[]), CAST(:m AS text[])) AS k(c, m)"
        " LEFT JOIN members m ON m.community_id = k.c AND m.member_id = k.m",
        {"c": [c for c, _ in keys], "m": [m for _, m in keys]},
    )
    states: dict[tuple[str, str], MemberState] = {}
    holders: set[tuple[str, str]] = set()
    for r in rows:
        if r["channel"] is not None:
            states[(r["c"], r["m"])] = MemberState(r["channel"], r["status"],
                                                   r["first_joined_at"])
        if r["holds"]:
            holders.add((r["c"], r["m"]))
    return states, holders


async def _write(conn: AsyncConnection, fold: MemberFold, touched: set[tuple[str, str]]) -> None:
    await insert_rows(
        conn,
        "member_changes",
        [("community_id", "text"), ("member_id", "text"), ("seq", "int"), ("kind", "text"),
         ("channel", "text"), ("at", "timestamptz")],
        fold.changes,
        then=[*deltas("member_changes"), *retention.DELTAS],
    )
    await insert_rows(
        conn,
        "members",
        [("community_id", "text"), ("member_id", "text"), ("channel", "text"),
         ("status", "text"), ("first_joined_at", "timestamptz")],
        [(*key, s.channel, s.status, s.first_joined_at)
         for key, s in fold.states.items() if key in touched],
        "ON CONFLICT (community_id, member_id) DO UPDATE SET channel = excluded.channel,"
        " status = excluded.status",
    )
    held = [key for key, holds in fold.roles.items() if holds]
    dropped = [key for key, holds in fold.roles.items() if not holds]
    role_columns = [("community_id", "text"), ("member_id", "text"), ("role", "text")]
    await insert_rows(conn, "member_roles", role_columns, held)
    if dropped:
        await conn.execute(
            text(
                "DELETE FROM member_roles r USING unnest(CAST(:c AS text[]), CAST(:m AS text[]),"
                " CAST(:r AS text[])) AS k(c, m, r)"
                " WHERE r.community_id = k.c AND r.member_id = k.m AND r.role = k.r"
            ),
            {"c": [k[0] for k in dropped], "m": [k[1] for k in dropped],
             "r": [k[2] for k in dropped]},
        )
