"""Reaction speed without scanning every reaction: first reaction per content item, and added
reactions per (zone, publication day/month, 1 % delay bin), filled from what is stored.

Revision ID: kpi0005
"""

from alembic import op

from services.kpi.facts.speed import BIN, FIRSTS_FROM_FACTS

revision = "kpi0005"
down_revision = "kpi0004"
branch_labels = None
depends_on = None

# The table as this revision made it (kpi0014 splits it in two; facts/speed.py writes those).
DELAYS = (
    "INSERT INTO reaction_delays AS t (community_id, tz, period, start, bin, n)"
    " SELECT c.community_id, z.tz, p.period,"
    " CAST(date_trunc(p.period, c.published_at AT TIME ZONE z.tz) AS date),"
    f" {BIN}, count(*)"
    " FROM content c JOIN reaction_facts r ON r.community_id = c.community_id"
    " AND r.content_id = c.content_id AND r.added"
    " JOIN kpi_zones z ON z.community_id = c.community_id"
    " CROSS JOIN unnest(ARRAY['day', 'month']) AS p(period) GROUP BY 1, 2, 3, 4, 5"
)


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
    op.execute(DELAYS)


def downgrade() -> None:
    op.execute("DROP TABLE reaction_delays")
    op.execute("DROP TABLE content_first_reactions")
