"""Engagement read models, written in the same transaction as the events they reflect.

Revision ID: en0001
"""

from alembic import op

revision = "en0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = [
    """
    CREATE TABLE content_items (
        listed       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id           uuid PRIMARY KEY,
        community_id text NOT NULL,
        channel      text NOT NULL,
        kind         text NOT NULL,
        author_id    uuid,
        published_at timestamptz NOT NULL,
        title        text,
        url          text,
        archived_at  timestamptz,
        version      integer NOT NULL
    )
    """,
    "CREATE INDEX content_items_by_community ON content_items (community_id, listed)",
    # Views are counted per item, not kept one row each: the log has every view.
    """
    CREATE TABLE content_view_totals (
        content_id   uuid PRIMARY KEY,
        community_id text NOT NULL,
        views        bigint NOT NULL
    )
    """,
    """
    CREATE TABLE view_counters (
        id           uuid PRIMARY KEY,
        community_id text NOT NULL,
        content_id   uuid NOT NULL,
        counter      text NOT NULL,
        channel      text NOT NULL,
        total        bigint NOT NULL,
        as_of        timestamptz NOT NULL,
        version      integer NOT NULL
    )
    """,
    "CREATE INDEX view_counters_by_content ON view_counters (content_id)",
    """
    CREATE TABLE reactions (
        id           uuid PRIMARY KEY,
        community_id text NOT NULL,
        content_id   uuid NOT NULL,
        member_id    uuid NOT NULL,
        kind         text NOT NULL,
        channel      text NOT NULL,
        active       boolean NOT NULL,
        at           timestamptz NOT NULL,
        version      integer NOT NULL
    )
    """,
    "CREATE INDEX reactions_active_by_content ON reactions (content_id) WHERE active",
    """
    CREATE TABLE feedback (
        id           uuid PRIMARY KEY,
        community_id text NOT NULL,
        member_id    uuid NOT NULL,
        about_kind   text NOT NULL,
        about_id     uuid,
        rating       smallint,
        channel      text NOT NULL,
        body         text NOT NULL,
        status       text NOT NULL,
        -- oldest unanswered first: submitted, then answered, then resolved
        status_rank  smallint GENERATED ALWAYS AS (
            CASE status WHEN 'submitted' THEN 0 WHEN 'answered' THEN 1 ELSE 2 END) STORED,
        submitted_at timestamptz NOT NULL,
        answered_at  timestamptz,
        answered_by  uuid,
        answer       text,
        resolved_at  timestamptz,
        version      integer NOT NULL
    )
    """,
    "CREATE INDEX feedback_queue ON feedback (community_id, status_rank, submitted_at, id)",
    """
    CREATE TABLE introductions (
        listed       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id           uuid PRIMARY KEY,
        community_id text NOT NULL,
        member_a     uuid NOT NULL,
        member_b     uuid NOT NULL,
        by_member    uuid NOT NULL,
        at           timestamptz NOT NULL
    )
    """,
    "CREATE INDEX introductions_by_community ON introductions (community_id, listed)",
    """
    CREATE TABLE thanks (
        listed       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id           uuid PRIMARY KEY,
        community_id text NOT NULL,
        to_member    uuid NOT NULL,
        by_member    uuid,
        reason       text,
        about_kind   text,
        about_id     uuid,
        at           timestamptz NOT NULL
    )
    """,
    "CREATE INDEX thanks_by_community ON thanks (community_id, listed)",
]


def upgrade() -> None:
    for statement in TABLES:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE thanks, introductions, feedback, reactions, view_counters,"
               " content_view_totals, content_items")
