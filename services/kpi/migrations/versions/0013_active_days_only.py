"""`active_seen` keeps only members' active days: `active_counts` now follows from the pairs of
consecutive days (facts/active.py), so the week and month rows have no reader left.

Revision ID: kpi0013
"""

from alembic import op

revision = "kpi0013"
down_revision = "kpi0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM active_seen WHERE period <> 'day'")


def downgrade() -> None:
    # A member is active in a week or month exactly when active on one of its days.
    op.execute(
        "INSERT INTO active_seen (community_id, tz, period, start, member_id)"
        " SELECT DISTINCT community_id, tz, p.period,"
        " CAST(date_trunc(p.period, CAST(start AS timestamp)) AS date), member_id"
        " FROM active_seen CROSS JOIN (VALUES ('week'), ('month')) AS p(period)"
        " WHERE period = 'day'"
    )
