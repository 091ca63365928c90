"""Views and reactions read fewer rows:

- `content_view_totals`: per content item its views (view facts plus each counter's latest
  snapshot) and the span of their moments (facts/content_views.py), so the most viewed content
  of a window that holds an item's span whole reads its total from one row;
- `first_reaction_delays`: per published content item the seconds to its first reaction
  (facts/speed.py), so the exact first-reaction quantiles read one row per item, no join;
- `reaction_delay_month_groups`: the monthly delay bins summed per group of 32 bins
  (facts/speed.py), so the median over every reaction reads a few hundred group rows and the
  bins of one or two groups, not every bin of every month.

The first two are zone-free and filled from the stored facts, the groups from the monthly bins
of the zones registered.

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
    op.execute(
        "CREATE TABLE reaction_delay_month_groups (community_id text NOT NULL,"
        " tz text NOT NULL, month date NOT NULL, grp integer NOT NULL, n bigint NOT NULL,"
        " PRIMARY KEY (community_id, tz, month, grp))"
    )
    op.execute(speed.GROUPS_FROM_MONTHS)


def downgrade() -> None:
    op.execute("DROP TABLE reaction_delay_month_groups")
    op.execute("DROP TABLE first_reaction_delays")
    op.execute("DROP TABLE content_view_totals")
