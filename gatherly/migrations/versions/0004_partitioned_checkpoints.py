"""Projection checkpoints per partition: a partitioned projection settles each partition on its
own (docs/adr/0005). Existing rows are the whole stream, partition `0/1`, so an upgraded
unpartitioned projector resumes where it stopped.

Revision ID: k0004
"""

from alembic import op

revision = "k0004"
down_revision = "k0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE projection_checkpoint ADD COLUMN partition text NOT NULL DEFAULT '0/1'"
    )
    op.execute("ALTER TABLE projection_checkpoint DROP CONSTRAINT projection_checkpoint_pkey")
    op.execute("ALTER TABLE projection_checkpoint ADD PRIMARY KEY (projection, partition)")


def downgrade() -> None:
    op.execute("DELETE FROM projection_checkpoint WHERE partition <> '0/1'")
    op.execute("ALTER TABLE projection_checkpoint DROP CONSTRAINT projection_checkpoint_pkey")
    op.execute("ALTER TABLE projection_checkpoint DROP COLUMN partition")
    op.execute("ALTER TABLE projection_checkpoint ADD PRIMARY KEY (projection)")
