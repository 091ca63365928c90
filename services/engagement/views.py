"""Content read models: the items, their view totals, channel counters and reaction states.

Written by the handlers in the command's transaction; the batch path's reads and writes are in
`batch_store`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.activity import CounterSnapshot, Publication, Reaction, ReactionCount
from services.engagement.content import Content

_CONTENT = (
    "listed, id::text AS id, community_id, channel, kind, author_id::text AS author_id,"
    " published_at, title, url, archived_at, version"
)
_REACTION = (
    "id::text AS id, content_id::text AS content_id, member_id::text AS member_id, kind,"
    " channel, active, at, version"
)


async def save_content(conn: AsyncConnection, content: Content) -> None:
    await conn.execute(
        text(
            "INSERT INTO content_items (id, community_id, channel, kind, author_id,"
            " published_at, title, url, archived_at, version)"
            " VALUES (:id, :community_id, :channel, :kind, :author_id, :published_at, :title,"
            " :url, :archived_at, :version)"
            " ON CONFLICT (id) DO UPDATE SET title = excluded.title, url = excluded.url,"
            " archived_at = excluded.archived_at, version = excluded.version"
        ),
        {
            "id": content.id, "community_id": content.community_id, "channel": content.channel,
            "kind": content.kind, "author_id": content.author_id,
            "published_at": content.published_at, "title": content.title, "url": content.url,
            "archived_at": content.archived_at, "version": content.version,
        },
    )


def _content(row: Any) -> Content:
    return Content(
        id=row.id, community_id=row.community_id, channel=row.channel, kind=row.kind,
        published_at=row.published_at, author_id=row.author_id, title=row.title, url=row.url,
        archived_at=row.archived_at, version=row.version,
    )


async def get_content(conn: AsyncConnection, community_id: str, content_id: str) -> Content | None:
    row = (
        await conn.execute(
            text(f"SELECT {_CONTENT} FROM content_items"
                 " WHERE community_id = :c AND id = CAST(:id AS uuid)"),
            {"c": community_id, "id": content_id},
        )
    ).first()
    return _content(row) if row else None


async def content_page(
    conn: AsyncConnection, community_id: str, *, after: int, limit: int, archived: bool | None,
    channel: str | None, kind: str | None,
) -> tuple[list[Content], int | None]:
    """One page in publication-record order; the second value is where the next page starts."""
    rows = (
        await conn.execute(
            text(
                f"SELECT {_CONTENT} FROM content_items WHERE community_id = :c AND listed > :after"
                " AND (CAST(:archived AS boolean) IS NULL"
                "      OR (archived_at IS NOT NULL) = CAST(:archived AS boolean))"
                " AND (CAST(:channel AS text) IS NULL OR channel = :channel)"
                " AND (CAST(:kind AS text) IS NULL OR kind = :kind)"
                " ORDER BY listed LIMIT :limit"
            ),
            {"c": community_id, "after": after, "archived": archived, "channel": channel,
             "kind": kind, "limit": limit + 1},
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_content(row) for row in rows], (rows[-1].listed if more and rows else None)


async def publications(
    conn: AsyncConnection, community_id: str, content_ids: Iterable[str]
) -> dict[str, Publication]:
    """The community's items among `content_ids`, in one query; unknown ids are simply absent."""
    rows = await conn.execute(
        text("SELECT id::text AS id, channel, published_at FROM content_items"
             " WHERE community_id = :c AND id = ANY(CAST(:ids AS uuid[]))"),
        {"c": community_id, "ids": sorted(set(content_ids))},
    )
    return {row.id: Publication(row.id, row.channel, row.published_at) for row in rows}


def reaction_of(row: Any) -> Reaction:
    """A `reactions` row (or one with its columns) as the state the plan works on."""
    return Reaction(
        id=row.id, content_id=row.content_id, member_id=row.member_id, kind=row.kind,
        channel=row.channel, active=row.active, at=row.at, version=row.version,
    )


async def reaction_states(
    conn: AsyncConnection, community_id: str, ids: list[str]
) -> dict[str, Reaction]:
    rows = await conn.execute(
        text(f"SELECT {_REACTION} FROM reactions"
             " WHERE community_id = :c AND id = ANY(CAST(:ids AS uuid[]))"),
        {"c": community_id, "ids": ids},
    )
    return {row.id: reaction_of(row) for row in rows}


async def get_counter(conn: AsyncConnection, counter_id: str) -> CounterSnapshot | None:
    row = (
        await conn.execute(
            text("SELECT id::text AS id, content_id::text AS content_id, counter, total, as_of,"
                 " version FROM view_counters WHERE id = CAST(:id AS uuid)"),
            {"id": counter_id},
        )
    ).first()
    if row is None:
        return None
    return CounterSnapshot(row.id, row.content_id, row.counter, row.total, row.as_of, row.version)


async def save_counter(
    conn: AsyncConnection, community_id: str, snapshot: CounterSnapshot, channel: str
) -> None:
    await conn.execute(
        text(
            "INSERT INTO view_counters (id, community_id, content_id, counter, channel, total,"
            " as_of, version) VALUES (:id, :c, :content, :counter, :channel, :total, :as_of,"
            " :version) ON CONFLICT (id) DO UPDATE SET total = excluded.total,"
            " as_of = excluded.as_of, channel = excluded.channel, version = excluded.version"
        ),
        {"id": snapshot.id, "c": community_id, "content": snapshot.content_id,
         "counter": snapshot.counter, "channel": channel, "total": snapshot.total,
         "as_of": snapshot.as_of, "version": snapshot.version},
    )


async def get_reaction_count(conn: AsyncConnection, counter_id: str) -> ReactionCount | None:
    row = (
        await conn.execute(
            text("SELECT id::text AS id, content_id::text AS content_id, counter, kind, total,"
                 " as_of, version FROM reaction_counters WHERE id = CAST(:id AS uuid)"),
            {"id": counter_id},
        )
    ).first()
    if row is None:
        return None
    return ReactionCount(row.id, row.content_id, row.counter, row.kind, row.total, row.as_of,
                         row.version)


async def save_reaction_count(
    conn: AsyncConnection, community_id: str, count: ReactionCount, channel: str
) -> None:
    await conn.execute(
        text(
            "INSERT INTO reaction_counters (id, community_id, content_id, counter, kind, channel,"
            " total, as_of, version) VALUES (:id, :c, :content, :counter, :kind, :channel,"
            " :total, :as_of, :version) ON CONFLICT (id) DO UPDATE SET total = excluded.total,"
            " as_of = excluded.as_of, channel = excluded.channel, version = excluded.version"
        ),
        {"id": count.id, "c": community_id, "content": count.content_id,
         "counter": count.counter, "kind": count.kind, "channel": channel,
         "total": count.total, "as_of": count.as_of, "version": count.version},
    )


async def content_stats(conn: AsyncConnection, content_id: str) -> dict[str, Any]:
    """Views (recorded one by one, plus each channel counter's latest total), live reactions
    (members' own) and the platforms' latest anonymous reaction counts."""
    views = await conn.scalar(
        text("SELECT coalesce(sum(views), 0) FROM content_view_totals"
             " WHERE content_id = CAST(:id AS uuid)"), {"id": content_id})
    counters = await conn.execute(
        text("SELECT counter, total, as_of FROM view_counters"
             " WHERE content_id = CAST(:id AS uuid) ORDER BY counter"), {"id": content_id})
    reactions = await conn.execute(
        text("SELECT kind, count(*) AS n FROM reactions WHERE content_id = CAST(:id AS uuid)"
             " AND active GROUP BY kind ORDER BY kind"), {"id": content_id})
    reaction_counts = await conn.execute(
        text("SELECT counter, kind, total, as_of FROM reaction_counters"
             " WHERE content_id = CAST(:id AS uuid) ORDER BY counter, kind"), {"id": content_id})
    counted = {row.counter: {"total": row.total, "as_of": row.as_of} for row in counters}
    counted_reactions: dict[str, dict[str, Any]] = {}
    for row in reaction_counts:
        counted_reactions.setdefault(row.counter, {})[row.kind] = {
            "total": row.total, "as_of": row.as_of}
    recorded = int(views or 0)
    return {
        "views": recorded + sum(int(c["total"]) for c in counted.values()),
        "recorded_views": recorded,
        "counters": counted,
        "reactions": {row.kind: int(row.n) for row in reactions},
        "reaction_counters": counted_reactions,
    }


async def get_reaction(
    conn: AsyncConnection, community_id: str, reaction_id: str
) -> Reaction | None:
    states = await reaction_states(conn, community_id, [reaction_id])
    return states.get(reaction_id)
