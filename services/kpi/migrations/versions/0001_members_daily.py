"""Members per community per day.

Revision ID: kpi0001
"""

from alembic import op

revision = "kpi0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE members_daily (
            community_id text NOT NULL,
            day          date NOT NULL,
            joined       integer NOT NULL DEFAULT 0,
            rejoined     integer NOT NULL DEFAULT 0,
            "left"       integer NOT NULL DEFAULT 0,
            PRIMARY KEY (community_id, day)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE members_daily")
