"""Read models of what passes between people and the team: feedback, introductions, thanks.

Feedback's words (the member's and the team's answer) live only here, the erasable store; the
events carry who, about what and when.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.feedback import Feedback, FeedbackStatus

_FEEDBACK = (
    "id::text AS id, community_id, member_id::text AS member_id, about_kind,"
    " about_id::text AS about_id, rating, channel, body, status, status_rank, submitted_at,"
    " answered_at, answered_by::text AS answered_by, answer, resolved_at, version"
)


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    feedback: Feedback
    body: str
    answer: str | None


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Where a feedback page ends: oldest unanswered first, then answered, then resolved."""

    rank: int
    submitted_at: datetime
    id: str


async def save_feedback(
    conn: AsyncConnection, feedback: Feedback, *, body: str | None = None,
    answer: str | None = None,
) -> None:
    """Insert on submission (with the body); later steps keep the body and may add an answer."""
    await conn.execute(
        text(
            "INSERT INTO feedback (id, community_id, member_id, about_kind, about_id, rating,"
            " channel, body, status, submitted_at, answered_at, answered_by, answer,"
            " resolved_at, version) VALUES (:id, :c, :member_id, :about_kind, :about_id,"
            " :rating, :channel, coalesce(:body, ''), :status, :submitted_at, :answered_at,"
            " :answered_by, :answer, :resolved_at, :version)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
            " answered_at = excluded.answered_at, answered_by = excluded.answered_by,"
            " answer = coalesce(excluded.answer, feedback.answer),"
            " resolved_at = excluded.resolved_at, version = excluded.version"
        ),
        {
            "id": feedback.id, "c": feedback.community_id, "member_id": feedback.member_id,
            "about_kind": feedback.about_kind, "about_id": feedback.about_id,
            "rating": feedback.rating, "channel": feedback.channel, "body": body,
            "status": feedback.status.value, "submitted_at": feedback.submitted_at,
            "answered_at": feedback.answered_at, "answered_by": feedback.answered_by,
            "answer": answer, "resolved_at": feedback.resolved_at, "version": feedback.version,
        },
    )


def _entry(row: Any) -> FeedbackEntry:
    feedback = Feedback(
        id=row.id, community_id=row.community_id, member_id=row.member_id,
        about_kind=row.about_kind, about_id=row.about_id, rating=row.rating,
        channel=row.channel, submitted_at=row.submitted_at, status=FeedbackStatus(row.status),
        answered_at=row.answered_at, answered_by=row.answered_by, resolved_at=row.resolved_at,
        version=row.version,
    )
    return FeedbackEntry(feedback, row.body, row.answer)


async def get_feedback(
    conn: AsyncConnection, community_id: str, feedback_id: str
) -> FeedbackEntry | None:
    row = (
        await conn.execute(
            text(f"SELECT {_FEEDBACK} FROM feedback"
                 " WHERE community_id = :c AND id = CAST(:id AS uuid)"),
            {"c": community_id, "id": feedback_id},
        )
    ).first()
    return _entry(row) if row else None


async def feedback_queue(
    conn: AsyncConnection, community_id: str, *, after: QueuePosition | None, limit: int,
    status: FeedbackStatus | None, submitted_before: datetime | None,
) -> tuple[list[FeedbackEntry], QueuePosition | None]:
    rows = (
        await conn.execute(
            text(
                f"SELECT {_FEEDBACK} FROM feedback WHERE community_id = :c"
                " AND (CAST(:status AS text) IS NULL OR status = :status)"
                " AND (CAST(:before AS timestamptz) IS NULL OR submitted_at < :before)"
                " AND (CAST(:rank AS smallint) IS NULL OR (status_rank, submitted_at, id)"
                "      > (CAST(:rank AS smallint), CAST(:at AS timestamptz), CAST(:id AS uuid)))"
                " ORDER BY status_rank, submitted_at, id LIMIT :limit"
            ),
            {
                "c": community_id, "status": status.value if status else None,
                "before": submitted_before, "rank": after.rank if after else None,
                "at": after.submitted_at if after else None, "id": after.id if after else None,
                "limit": limit + 1,
            },
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    position = QueuePosition(last.status_rank, last.submitted_at, last.id) if last else None
    return [_entry(row) for row in rows], position


async def save_introduction(conn: AsyncConnection, introduction: dict[str, Any]) -> None:
    await conn.execute(
        text("INSERT INTO introductions (id, community_id, member_a, member_b, by_member, at)"
             " VALUES (:id, :community_id, :member_a, :member_b, :by_member, :at)"),
        introduction,
    )


async def save_thanks(conn: AsyncConnection, thanks: dict[str, Any]) -> None:
    await conn.execute(
        text("INSERT INTO thanks (id, community_id, to_member, by_member, reason, about_kind,"
             " about_id, at) VALUES (:id, :community_id, :to_member, :by_member, :reason,"
             " :about_kind, :about_id, :at)"),
        thanks,
    )


async def page_of(
    conn: AsyncConnection, table: str, community_id: str, *, after: int, limit: int,
    member_id: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of introductions or thanks in record order, optionally those involving a member."""
    involving = {
        "introductions": "(member_a = :m OR member_b = :m OR by_member = :m)",
        "thanks": "(to_member = :m OR by_member = :m)",
    }[table]
    rows = (
        await conn.execute(
            text(
                f"SELECT * FROM {table} WHERE community_id = :c AND listed > :after"
                f" AND (CAST(:m AS uuid) IS NULL OR {involving})"
                " ORDER BY listed LIMIT :limit"
            ),
            {"c": community_id, "after": after, "m": member_id, "limit": limit + 1},
        )
    ).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{key: _plain(value) for key, value in row.items() if key != "listed"}
             for row in rows]
    return items, (int(rows[-1]["listed"]) if more and rows else None)


def _plain(value: Any) -> Any:
    """uuid columns come back as UUID objects; the API speaks strings."""
    return str(value) if isinstance(value, uuid.UUID) else value
