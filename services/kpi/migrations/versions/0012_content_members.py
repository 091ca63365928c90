"""Rollups for members, views, reactions and channels (reserved; filled by its change).

Revision ID: kpi0012
"""

revision = "kpi0012"
down_revision = "kpi0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
