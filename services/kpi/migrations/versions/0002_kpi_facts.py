"""The KPI read model: facts kept per id, so every answer is computed at query time and does not
depend on the order in which facts of different aggregates arrive.

Revision ID: kpi0002
"""

from alembic import op

revision = "kpi0002"
down_revision = "kpi0001"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE member_changes (
    community_id text NOT NULL, member_id text NOT NULL, seq integer NOT NULL,
    kind text NOT NULL, channel text NOT NULL, at timestamptz NOT NULL,
    PRIMARY KEY (community_id, member_id, seq)
);
CREATE INDEX member_changes_by_time ON member_changes (community_id, at);
CREATE TABLE members (
    community_id text NOT NULL, member_id text NOT NULL, channel text NOT NULL,
    status text NOT NULL, first_joined_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, member_id)
);
CREATE TABLE member_roles (
    community_id text NOT NULL, member_id text NOT NULL, role text NOT NULL,
    PRIMARY KEY (community_id, member_id, role)
);
CREATE TABLE erased_members (
    community_id text NOT NULL, digest text NOT NULL, PRIMARY KEY (community_id, digest)
);
CREATE TABLE activity (
    community_id text NOT NULL, member_id text NOT NULL, at timestamptz NOT NULL,
    PRIMARY KEY (community_id, at, member_id)
);
CREATE INDEX activity_by_member ON activity (community_id, member_id);
CREATE TABLE content (
    community_id text NOT NULL, content_id text NOT NULL, channel text NOT NULL,
    kind text NOT NULL, published_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, content_id)
);
CREATE INDEX content_by_publication ON content (community_id, published_at);
CREATE TABLE views (
    community_id text NOT NULL, view_id text NOT NULL, content_id text NOT NULL,
    channel text NOT NULL, count integer NOT NULL, at timestamptz NOT NULL,
    PRIMARY KEY (community_id, view_id)
);
CREATE INDEX views_by_time ON views (community_id, at);
CREATE TABLE view_counters (
    community_id text NOT NULL, content_id text NOT NULL, counter text NOT NULL,
    channel text NOT NULL, total bigint NOT NULL, as_of timestamptz NOT NULL,
    PRIMARY KEY (community_id, content_id, counter)
);
CREATE TABLE reaction_facts (
    community_id text NOT NULL, reaction_id text NOT NULL, seq integer NOT NULL,
    content_id text NOT NULL, kind text NOT NULL, channel text NOT NULL,
    added boolean NOT NULL, at timestamptz NOT NULL,
    PRIMARY KEY (community_id, reaction_id, seq)
);
CREATE INDEX reaction_facts_by_time ON reaction_facts (community_id, at);
CREATE INDEX reaction_facts_by_content ON reaction_facts (community_id, content_id);
CREATE TABLE community_events (
    community_id text NOT NULL, event_id text NOT NULL, channel text,
    starts_at timestamptz, ends_at timestamptz, cancelled_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (community_id, event_id)
);
CREATE TABLE registrations (
    community_id text NOT NULL, event_id text NOT NULL, member_id text NOT NULL,
    channel text, registered_at timestamptz, cancelled_at timestamptz,
    PRIMARY KEY (community_id, event_id, member_id)
);
CREATE TABLE attendances (
    community_id text NOT NULL, event_id text NOT NULL, member_id text NOT NULL,
    channel text NOT NULL, checked_in_at timestamptz NOT NULL, walk_in boolean NOT NULL,
    PRIMARY KEY (community_id, event_id, member_id)
);
CREATE INDEX attendances_by_member ON attendances (community_id, member_id, checked_in_at);
CREATE TABLE followups (
    community_id text NOT NULL, event_id text NOT NULL, task text NOT NULL,
    assigned boolean NOT NULL DEFAULT false, done_at timestamptz,
    PRIMARY KEY (community_id, event_id, task)
);
CREATE TABLE feedback (
    community_id text NOT NULL, feedback_id text NOT NULL, channel text,
    submitted_at timestamptz, answered_at timestamptz, resolved_at timestamptz,
    PRIMARY KEY (community_id, feedback_id)
);
CREATE INDEX feedback_by_submission ON feedback (community_id, submitted_at);
"""

DROPPED = (
    "feedback followups attendances registrations community_events reaction_facts view_counters"
    " views content activity erased_members member_roles members member_changes"
)


def upgrade() -> None:
    op.execute("DROP TABLE members_daily")
    for statement in TABLES.split(";"):  # asyncpg runs one statement at a time
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in DROPPED.split():
        op.execute(f"DROP TABLE {table}")
    op.execute(
        "CREATE TABLE members_daily (community_id text NOT NULL, day date NOT NULL,"
        " joined integer NOT NULL DEFAULT 0, rejoined integer NOT NULL DEFAULT 0,"
        ' "left" integer NOT NULL DEFAULT 0, PRIMARY KEY (community_id, day))'
    )
