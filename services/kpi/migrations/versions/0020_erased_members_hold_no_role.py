"""An erased member no longer counts for role coverage, as the members service lists them as
neither active nor left: their status in `members` becomes 'erased' (their rows carry the
`erased:` pseudonym since the erasure, facts/identity.py), and `role_holders` is counted again
from the stored roles and statuses.

Revision ID: kpi0020
"""

from alembic import op

from services.kpi.facts.roles import HOLDERS_FROM_FACTS

revision = "kpi0020"
down_revision = "kpi0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE members SET status = 'erased' WHERE member_id LIKE 'erased:%'")
    op.execute("TRUNCATE role_holders")
    op.execute(HOLDERS_FROM_FACTS)


def downgrade() -> None:
    # Before kpi0020 an erased member kept the status they had; 'member' is what counted them.
    op.execute("UPDATE members SET status = 'member' WHERE status = 'erased'")
    op.execute("TRUNCATE role_holders")
    op.execute(HOLDERS_FROM_FACTS)
