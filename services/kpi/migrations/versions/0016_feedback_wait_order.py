"""Feedback in wait order within each wait bin: the time to first answer at a rank is read by
an index-only scan up to its position, not by sorting its bin's rows (queries/backlog.py). The
index by submission within a bin (kpi0011) stays: for a short window over a long history the
planner still sorts the window's few rows of a bin.

Revision ID: kpi0016
"""

from alembic import op

from services.kpi.facts.backlog import WAIT_BIN, WAIT_SECONDS

revision = "kpi0016"
down_revision = "kpi0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX feedback_in_wait_order ON feedback (community_id, ({WAIT_BIN}),"
        f" ({WAIT_SECONDS})) INCLUDE (submitted_at, answered_at)"
        " WHERE submitted_at IS NOT NULL AND answered_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX feedback_in_wait_order")
