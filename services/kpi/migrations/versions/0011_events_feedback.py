"""Participants per event, new participants per day, feedback waits by 5 % bin and the open
backlog by day of submission and of resolution (facts/participants.py, facts/backlog.py),
filled from the stored facts, for the zones already registered too.

Revision ID: kpi0011
"""

from alembic import op

from services.kpi.facts import backlog, participants

revision = "kpi0011"
down_revision = "kpi0010"
branch_labels = None
depends_on = None

TABLES = f"""
CREATE TABLE event_participants (
    community_id text NOT NULL, event_id text NOT NULL, attended bigint NOT NULL,
    walk_ins bigint NOT NULL, new bigint NOT NULL, PRIMARY KEY (community_id, event_id)
);
CREATE TABLE first_attendance_days (
    community_id text NOT NULL, tz text NOT NULL, day date NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, day)
);
CREATE TABLE feedback_waits (
    community_id text NOT NULL, tz text NOT NULL, period text NOT NULL, start date NOT NULL,
    bin int NOT NULL, n bigint NOT NULL, PRIMARY KEY (community_id, tz, period, start, bin)
);
CREATE TABLE feedback_open (
    community_id text NOT NULL, tz text NOT NULL, submitted date NOT NULL,
    resolved date NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, resolved, submitted)
);
CREATE INDEX feedback_by_wait ON feedback (community_id, ({backlog.WAIT_BIN}), submitted_at)
    INCLUDE (answered_at) WHERE submitted_at IS NOT NULL AND answered_at IS NOT NULL
"""


def upgrade() -> None:
    for statement in TABLES.split(";"):
        op.execute(statement)
    op.execute(participants.EVENT_PARTICIPANTS_FROM_FACTS)
    # Its `first_attendance_days` was filled here too, until kpi0021 dropped the table.
    for sql in backlog.backfill("TRUE").values():
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP INDEX feedback_by_wait")
    for table in ("feedback_open", "feedback_waits", "first_attendance_days",
                  "event_participants"):
        op.execute(f"DROP TABLE {table}")
