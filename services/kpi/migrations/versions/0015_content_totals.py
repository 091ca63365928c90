"""Views and reactions read fewer rows:

- `content_view_totals`: per content item its views (view facts plus each counter's latest
  snapshot) and the span of their moments (facts/content_views.py), so the most viewed content
  of a window that holds an item's span whole reads its total from one row;
- `first_reaction_delays`: per published content item the seconds to its first reaction
  (facts/speed.py), so the exact first-reaction quantiles read one row per item, no join.

Both are zone-free and filled from the stored facts.

Revision ID: kpi0015
"""

from alembic import op

from services.kpi.facts import content_views, speed

revision = "kpi0015"
down_revision = "kpi0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE content_view_totals (community_id text NOT NULL, content_id text NOT NULL,"
        " n bigint NOT NULL, first_at timestamptz NOT NULL, last_at timestamptz NOT NULL,"
        " PRIMARY KEY (community_id, content_id))"
    )
    op.execute(content_views.FROM_FACTS)
    op.execute(
        "CREATE TABLE first_reaction_delays (community_id text NOT NULL,"
        " content_id text NOT NULL, published_at timestamptz NOT NULL,"
        " first_seconds double precision, PRIMARY KEY (community_id, content_id))"
    )
    op.execute(
        "CREATE INDEX first_reaction_delays_by_publication"
        " ON first_reaction_delays (community_id, published_at) INCLUDE (first_seconds)"
    )
    op.execute(speed.FIRST_DELAYS_FROM_FACTS)


def downgrade() -> None:
    op.execute("DROP TABLE first_reaction_delays")
    op.execute("DROP TABLE content_view_totals")
