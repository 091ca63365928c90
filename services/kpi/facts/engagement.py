"""Engagement facts: content, views, view counters, reactions, reaction counters and feedback,
each kept by its own id. Views and reactions are their own aggregates and may arrive before
their content: nothing here needs the content, the queries join at read time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.kpi.facts import changing, content_views
from services.kpi.facts.common import fact_time, insert_rows
from services.kpi.facts.counters import REACTION_DELTAS, REACTION_KEYS, VIEW_DELTAS, VIEW_KEYS
from services.kpi.facts.rollups import deltas

REACTIONS = {"gatherly.reaction.added": True, "gatherly.reaction.removed": False}
FEEDBACK = {
    "gatherly.feedback.answered": "answered_at",
    "gatherly.feedback.resolved": "resolved_at",
}


async def apply(conn: AsyncConnection, events: list[Envelope]) -> None:
    content, views, reactions = [], [], []
    counters: dict[tuple[str, str, str], tuple[str, int, datetime]] = {}
    counted: dict[tuple[str, str, str, str], tuple[str, int, datetime]] = {}
    feedback: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        data, at = e.data, fact_time(e)
        if e.type == "gatherly.content.published":
            content.append((e.community_id, e.subject, data["channel"], data["kind"], at))
        elif e.type == "gatherly.content.viewed":
            views.append((e.community_id, e.subject, data["content_id"], data["channel"],
                          int(data["count"]), at))
        elif e.type == "gatherly.content.views_counted":
            key = (e.community_id, str(data["content_id"]), str(data["counter"]))
            snapshot = (data["channel"], int(data["total"]), at)
            if key not in counters or _later(snapshot, counters[key]):
                counters[key] = snapshot
        elif e.type == "gatherly.content.reactions_counted":
            kind_key = (e.community_id, str(data["content_id"]), str(data["counter"]),
                        str(data["kind"]))
            snapshot = (data["channel"], int(data["total"]), at)
            if kind_key not in counted or _later(snapshot, counted[kind_key]):
                counted[kind_key] = snapshot
        elif e.type in REACTIONS:
            reactions.append((e.community_id, e.subject, e.sequence, data["content_id"],
                              data["kind"], data["channel"], REACTIONS[e.type], at))
        elif e.type == "gatherly.feedback.submitted" or e.type in FEEDBACK:
            _fold_feedback(feedback.setdefault((e.community_id, e.subject), {}), e, at)
    await _write_content(conn, content, views, counters, reactions)
    await _write_reaction_counters(conn, counted)
    await _write_feedback(conn, feedback)


def _later(new: tuple[str, int, datetime], old: tuple[str, int, datetime]) -> bool:
    """The latest snapshot wins; on a tie the larger total, so the order never matters."""
    return (new[2], new[1]) > (old[2], old[1])


def _fold_feedback(row: dict[str, Any], e: Envelope, at: datetime) -> None:
    if e.type == "gatherly.feedback.submitted":
        row["channel"], row["submitted_at"] = e.data["channel"], at
    else:
        column = FEEDBACK[e.type]
        row[column] = min(at, row.get(column, at))  # the first answer is what the SLA measures


async def _write_content(
    conn: AsyncConnection,
    content: list[tuple[Any, ...]],
    views: list[tuple[Any, ...]],
    counters: dict[tuple[str, str, str], tuple[str, int, datetime]],
    reactions: list[tuple[Any, ...]],
) -> None:
    await insert_rows(
        conn, "content",
        [("community_id", "text"), ("content_id", "text"), ("channel", "text"),
         ("kind", "text"), ("published_at", "timestamptz")],
        content,
        then=deltas("content"),
    )
    await insert_rows(
        conn, "views",
        [("community_id", "text"), ("view_id", "text"), ("content_id", "text"),
         ("channel", "text"), ("count", "int"), ("at", "timestamptz")],
        views,
        then=deltas("views"),
    )
    await insert_rows(
        conn, "view_counters",
        [("community_id", "text"), ("content_id", "text"), ("counter", "text"),
         ("channel", "text"), ("total", "bigint"), ("as_of", "timestamptz")],
        [(*key, *snapshot) for key, snapshot in counters.items()],
        "ON CONFLICT (community_id, content_id, counter) DO UPDATE SET"
        " channel = excluded.channel, total = excluded.total, as_of = excluded.as_of"
        " WHERE (excluded.as_of, excluded.total) > (t.as_of, t.total)",
        then=[*VIEW_DELTAS, *content_views.SNAPSHOT_DELTAS], keys=VIEW_KEYS,
    )
    await insert_rows(
        conn, "reaction_facts",
        [("community_id", "text"), ("reaction_id", "text"), ("seq", "int"),
         ("content_id", "text"), ("kind", "text"), ("channel", "text"), ("added", "bool"),
         ("at", "timestamptz")],
        reactions,
        then=deltas("reaction_facts"),
    )


async def _write_reaction_counters(
    conn: AsyncConnection, counted: dict[tuple[str, str, str, str], tuple[str, int, datetime]]
) -> None:
    """Per (content, counter, kind) the latest snapshot, by the same commutative rule as views."""
    await insert_rows(
        conn, "reaction_counters",
        [("community_id", "text"), ("content_id", "text"), ("counter", "text"),
         ("kind", "text"), ("channel", "text"), ("total", "bigint"), ("as_of", "timestamptz")],
        [(*key, *snapshot) for key, snapshot in counted.items()],
        "ON CONFLICT (community_id, content_id, counter, kind) DO UPDATE SET"
        " channel = excluded.channel, total = excluded.total, as_of = excluded.as_of"
        " WHERE (excluded.as_of, excluded.total) > (t.as_of, t.total)",
        then=REACTION_DELTAS, keys=REACTION_KEYS,
    )


async def _write_feedback(
    conn: AsyncConnection, feedback: dict[tuple[str, str], dict[str, Any]]
) -> None:
    await insert_rows(
        conn, "feedback",
        [("community_id", "text"), ("feedback_id", "text"), ("channel", "text"),
         ("submitted_at", "timestamptz"), ("answered_at", "timestamptz"),
         ("resolved_at", "timestamptz")],
        [(*key, row.get("channel"), row.get("submitted_at"), row.get("answered_at"),
          row.get("resolved_at")) for key, row in feedback.items()],
        "ON CONFLICT (community_id, feedback_id) DO UPDATE SET"
        " channel = coalesce(excluded.channel, t.channel),"
        " submitted_at = coalesce(excluded.submitted_at, t.submitted_at),"
        " answered_at = least(excluded.answered_at, t.answered_at),"
        " resolved_at = least(excluded.resolved_at, t.resolved_at)",
        then=changing.DELTAS["feedback"], keys=changing.KEYS["feedback"],
    )
