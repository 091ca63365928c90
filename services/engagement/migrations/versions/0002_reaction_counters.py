"""Platforms' anonymous reaction counts: the latest snapshot per (content, counter, kind).

Revision ID: en0002
"""

from alembic import op

revision = "en0002"
down_revision = "en0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE reaction_counters (
            id           uuid PRIMARY KEY,
            community_id text NOT NULL,
            content_id   uuid NOT NULL,
            counter      text NOT NULL,
            kind         text NOT NULL,
            channel      text NOT NULL,
            total        bigint NOT NULL,
            as_of        timestamptz NOT NULL,
            version      integer NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX reaction_counters_by_content ON reaction_counters (content_id)")


def downgrade() -> None:
    op.execute("DROP TABLE reaction_counters")
