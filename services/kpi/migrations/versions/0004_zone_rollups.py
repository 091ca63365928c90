"""Zone-keyed daily rollups, kept exact by the projection for every zone a community asked in.

Revision ID: kpi0004
"""

from alembic import op

revision = "kpi0004"
down_revision = "kpi0003"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE kpi_zones (
    community_id text NOT NULL, tz text NOT NULL, PRIMARY KEY (community_id, tz)
);
CREATE TABLE member_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, channel text NOT NULL,
    kind text NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, day, channel, kind)
);
CREATE TABLE view_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, channel text NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (community_id, tz, day, channel)
);
CREATE TABLE content_view_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, content_id text NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (community_id, tz, day, content_id)
);
CREATE TABLE reaction_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, channel text NOT NULL,
    kind text NOT NULL, added boolean NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, day, channel, kind, added)
);
CREATE TABLE active_seen (
    community_id text NOT NULL, tz text NOT NULL, period text NOT NULL, start date NOT NULL,
    member_id text NOT NULL, PRIMARY KEY (community_id, tz, period, start, member_id)
);
CREATE INDEX active_seen_by_member ON active_seen (community_id, member_id);
CREATE TABLE active_counts (
    community_id text NOT NULL, tz text NOT NULL, period text NOT NULL, start date NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (community_id, tz, period, start)
)
"""

DROPPED = (
    "active_counts active_seen reaction_days content_view_days view_days member_days kpi_zones"
)


def upgrade() -> None:
    for statement in TABLES.split(";"):  # asyncpg runs one statement at a time
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in DROPPED.split():
        op.execute(f"DROP TABLE {table}")
