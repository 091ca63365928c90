"""Each member's first attended event (new vs repeat participants without sorting every
attendance at query time), filled from the stored attendances.

Revision ID: kpi0007
"""

from alembic import op

from services.kpi.facts.events import FIRST_ATTENDANCES_FROM_FACTS

revision = "kpi0007"
down_revision = "kpi0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE first_attendances (community_id text NOT NULL, member_id text NOT NULL,"
        " checked_in_at timestamptz NOT NULL, event_id text NOT NULL,"
        " PRIMARY KEY (community_id, member_id))"
    )
    op.execute("CREATE INDEX first_attendances_by_time"
               " ON first_attendances (community_id, checked_in_at)")
    op.execute("CREATE INDEX first_attendances_by_event"
               " ON first_attendances (community_id, event_id)")
    op.execute(FIRST_ATTENDANCES_FROM_FACTS)


def downgrade() -> None:
    op.execute("DROP TABLE first_attendances")
