"""Platforms' anonymous reaction counts: the latest snapshot per (content, counter, kind).

Revision ID: kpi0003
"""

from alembic import op

revision = "kpi0003"
down_revision = "kpi0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE reaction_counters ("
        " community_id text NOT NULL, content_id text NOT NULL, counter text NOT NULL,"
        " kind text NOT NULL, channel text NOT NULL, total bigint NOT NULL,"
        " as_of timestamptz NOT NULL, PRIMARY KEY (community_id, content_id, counter, kind))"
    )
    op.execute("CREATE INDEX reaction_counters_by_time ON reaction_counters (community_id, as_of)")


def downgrade() -> None:
    op.execute("DROP TABLE reaction_counters")
