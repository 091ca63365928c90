"""Daily rollups of attendances, registrations (not cancelled) and feedback (submitted, answered,
resolved) per zone, filled for the zones already registered.

Revision ID: kpi0008
"""

from alembic import op

from services.kpi.facts import changing
from services.kpi.facts.rollups import ROLLUPS

revision = "kpi0008"
down_revision = "kpi0007"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE attendance_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, channel text NOT NULL,
    walk_in boolean NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, day, channel, walk_in)
);
CREATE TABLE registration_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, channel text NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (community_id, tz, day, channel)
);
CREATE TABLE feedback_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, kind text NOT NULL,
    channel text NOT NULL, n bigint NOT NULL, PRIMARY KEY (community_id, tz, day, kind, channel)
)
"""


def upgrade() -> None:
    for statement in TABLES.split(";"):
        if statement.strip():
            op.execute(statement)
    attendance_days = next(r for r in ROLLUPS if r.table == "attendance_days")
    op.execute(attendance_days.sql(attendance_days.source, "TRUE"))
    for sql in changing.backfill("TRUE").values():
        op.execute(sql)


def downgrade() -> None:
    for table in ("feedback_days", "registration_days", "attendance_days"):
        op.execute(f"DROP TABLE {table}")
