"""Retention by cohort and role coverage kept as counts: `retention_months` per zone (cohort,
month: members joined, signed status changes), filled for the zones already registered, and
`role_holders` (current members per role), filled from the stored facts.

Revision ID: kpi0010
"""

from alembic import op

from services.kpi.facts.retention import backfill_sql
from services.kpi.facts.roles import HOLDERS_FROM_FACTS

revision = "kpi0010"
down_revision = "kpi0009"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE retention_months (
    community_id text NOT NULL, tz text NOT NULL, cohort date NOT NULL, month date NOT NULL,
    joined bigint NOT NULL, retained bigint NOT NULL,
    PRIMARY KEY (community_id, tz, cohort, month)
);
CREATE TABLE role_holders (
    community_id text NOT NULL, role text NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, role)
)
"""


def upgrade() -> None:
    for statement in TABLES.split(";"):
        if statement.strip():
            op.execute(statement)
    op.execute("SET LOCAL work_mem = '64MB'")  # one sort of every member change
    op.execute(backfill_sql("TRUE"))
    op.execute(HOLDERS_FROM_FACTS)


def downgrade() -> None:
    op.execute("DROP TABLE role_holders")
    op.execute("DROP TABLE retention_months")
