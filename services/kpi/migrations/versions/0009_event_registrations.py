"""Per event: registrations not cancelled, and those with an attendance (no-shows without an
anti-join of every registration at query time), filled from the stored facts.

Revision ID: kpi0009
"""

from alembic import op

from services.kpi.facts.changing import EVENT_REGISTRATIONS_FROM_FACTS

revision = "kpi0009"
down_revision = "kpi0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE event_registrations (community_id text NOT NULL, event_id text NOT NULL,"
        " registered bigint NOT NULL, attended bigint NOT NULL,"
        " PRIMARY KEY (community_id, event_id))"
    )
    op.execute(EVENT_REGISTRATIONS_FROM_FACTS)


def downgrade() -> None:
    op.execute("DROP TABLE event_registrations")
