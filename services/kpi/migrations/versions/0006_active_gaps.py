"""Distinct active members over any window: per (zone, day or month of an active day, the
member's previous active day) the number of members (facts/active.py), filled from
`active_seen` for the zones already registered.

Revision ID: kpi0006
"""

from alembic import op

from services.kpi.facts.active import FROM_SEEN

revision = "kpi0006"
down_revision = "kpi0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE active_gaps (community_id text NOT NULL, tz text NOT NULL,"
        " period text NOT NULL, start date NOT NULL, previous date NOT NULL, n bigint NOT NULL,"
        " PRIMARY KEY (community_id, tz, period, start, previous))"
    )
    # The projection looks up a member's nearest active days before and after a new one.
    op.execute(
        "CREATE INDEX active_seen_days ON active_seen (community_id, tz, member_id, start)"
        " WHERE period = 'day'"
    )
    op.execute(FROM_SEEN)


def downgrade() -> None:
    op.execute("DROP INDEX active_seen_days")
    op.execute("DROP TABLE active_gaps")
