"""Rollups for retention by cohort and role coverage (reserved; filled by its change).

Revision ID: kpi0010
"""

revision = "kpi0010"
down_revision = "kpi0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
