"""Rollups for events and feedback per day (reserved; filled by its change).

Revision ID: kpi0011
"""

revision = "kpi0011"
down_revision = "kpi0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
