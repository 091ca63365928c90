"""What a batch reads and writes besides its events, one statement each way: on a busy
machine each statement's send alone was a sixth of a batch's time.

The read gives the plan the content items and reaction states it needs; the write updates both
read-model tables. The events go in by COPY between the two (`EventStore.append_decided`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.engagement.activity import Publication, Reaction
from services.engagement.views import reaction_of

# Both kinds of row in one result: a content item fills id, channel and `at` (its publication).
_STATE = text(
    "SELECT false AS reaction, id::text AS id, NULL AS content_id, NULL AS member_id,"
    " NULL AS kind, channel, NULL::boolean AS active, published_at AS at, NULL::int AS version"
    " FROM content_items WHERE community_id = :c AND id = ANY(CAST(:contents AS uuid[]))"
    " UNION ALL"
    " SELECT true, id::text, content_id::text, member_id::text, kind, channel, active, at,"
    " version FROM reactions WHERE community_id = :c AND id = ANY(CAST(:reactions AS uuid[]))"
)

# The plan adds up views per item and keeps one final state per reaction, so no row is hit twice.
_WRITE = text(
    "WITH viewed AS (INSERT INTO content_view_totals (content_id, community_id, views)"
    " SELECT v.content_id, :c, v.views"
    " FROM unnest(CAST(:viewed_contents AS uuid[]), CAST(:viewed AS bigint[]))"
    " AS v(content_id, views)"
    " ON CONFLICT (content_id) DO UPDATE"
    " SET views = content_view_totals.views + excluded.views),"
    " reacted AS (INSERT INTO reactions (id, community_id, content_id, member_id, kind, channel,"
    " active, at, version)"
    " SELECT r.id, :c, r.content_id, r.member_id, r.kind, r.channel, r.active, r.at, r.version"
    " FROM unnest(CAST(:r_ids AS uuid[]), CAST(:r_contents AS uuid[]),"
    " CAST(:r_members AS uuid[]), CAST(:r_kinds AS text[]), CAST(:r_channels AS text[]),"
    " CAST(:r_actives AS boolean[]), CAST(:r_ats AS timestamptz[]), CAST(:r_versions AS int[]))"
    " AS r(id, content_id, member_id, kind, channel, active, at, version)"
    " ON CONFLICT (id) DO UPDATE SET active = excluded.active, at = excluded.at,"
    " version = excluded.version)"
    " SELECT 1"
)


async def batch_state(
    conn: AsyncConnection, community_id: str, content_ids: Iterable[str], reaction_ids: list[str]
) -> tuple[dict[str, Publication], dict[str, Reaction]]:
    """The community's items among `content_ids` and the reactions among `reaction_ids` that
    exist; unknown ids are simply absent."""
    rows = await conn.execute(_STATE, {"c": community_id, "contents": sorted(set(content_ids)),
                                       "reactions": reaction_ids})
    contents: dict[str, Publication] = {}
    reactions: dict[str, Reaction] = {}
    for row in rows:
        if row.reaction:
            reactions[row.id] = reaction_of(row)
        else:
            contents[row.id] = Publication(row.id, row.channel, row.at)
    return contents, reactions


async def save_read_models(
    conn: AsyncConnection, community_id: str, views: dict[str, int], reactions: list[Reaction]
) -> None:
    """Views added per content item, and each touched reaction's final state."""
    if not views and not reactions:
        return
    await conn.execute(_WRITE, {
        "c": community_id,
        "viewed_contents": list(views), "viewed": list(views.values()),
        "r_ids": [r.id for r in reactions], "r_contents": [r.content_id for r in reactions],
        "r_members": [r.member_id for r in reactions], "r_kinds": [r.kind for r in reactions],
        "r_channels": [r.channel for r in reactions], "r_actives": [r.active for r in reactions],
        "r_ats": [r.at for r in reactions], "r_versions": [r.version for r in reactions],
    })
