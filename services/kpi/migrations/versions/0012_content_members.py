"""Monthly twins of the member, content view and reaction day rollups: a window reads its whole
months from them and only the days it cuts from the daily ones; filled for the zones already
registered from the stored facts.

Revision ID: kpi0012
"""

from alembic import op

from services.kpi.facts.rollups import ROLLUPS

revision = "kpi0012"
down_revision = "kpi0011"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE member_months (
    community_id text NOT NULL, tz text NOT NULL, month date NOT NULL, channel text NOT NULL,
    kind text NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, month, channel, kind)
);
CREATE TABLE content_view_months (
    community_id text NOT NULL, tz text NOT NULL, month date NOT NULL, content_id text NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (community_id, tz, month, content_id)
);
CREATE TABLE reaction_months (
    community_id text NOT NULL, tz text NOT NULL, month date NOT NULL, channel text NOT NULL,
    kind text NOT NULL, added boolean NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (community_id, tz, month, channel, kind, added)
)
"""
MONTHLY = ("member_months", "content_view_months", "reaction_months")


def upgrade() -> None:
    for statement in TABLES.split(";"):  # asyncpg runs one statement at a time
        op.execute(statement)
    for rollup in (r for r in ROLLUPS if r.table in MONTHLY):
        op.execute(rollup.sql(rollup.source, "TRUE"))  # every registered zone, from the facts


def downgrade() -> None:
    for table in reversed(MONTHLY):
        op.execute(f"DROP TABLE {table}")
