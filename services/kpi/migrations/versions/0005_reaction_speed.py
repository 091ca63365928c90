"""Reaction speed without scanning every reaction: first reaction per content item, and added
reactions per (zone, publication day/month, 1 % delay bin), filled from what is stored.

Revision ID: kpi0005
"""

from alembic import op

from services.kpi.facts.speed import FIRSTS_FROM_FACTS, delays_sql

revision = "kpi0005"
down_revision = "kpi0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE content_first_reactions (community_id text NOT NULL,"
        " content_id text NOT NULL, first_at timestamptz NOT NULL,"
        " PRIMARY KEY (community_id, content_id))"
    )
    op.execute(
        "CREATE TABLE reaction_delays (community_id text NOT NULL, tz text NOT NULL,"
        " period text NOT NULL, start date NOT NULL, bin integer NOT NULL, n bigint NOT NULL,"
        " PRIMARY KEY (community_id, tz, period, start, bin))"
    )
    op.execute(FIRSTS_FROM_FACTS)
    op.execute(delays_sql("reaction_facts", "content", "TRUE"))


def downgrade() -> None:
    op.execute("DROP TABLE reaction_delays")
    op.execute("DROP TABLE content_first_reactions")
