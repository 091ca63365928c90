"""The reaction delay bins' monthly rows get a table of their own (`reaction_delay_months`), the
daily ones too (`reaction_delay_days`), both keyed like the other rollups (facts/speed.py): a
year's ~10,000 monthly rows were scattered among the daily ones, over ~1,500 heap pages.

Revision ID: kpi0014
"""

from alembic import op

revision = "kpi0014"
down_revision = "kpi0013"
branch_labels = None
depends_on = None

KEYS = "community_id text NOT NULL, tz text NOT NULL, {start} date NOT NULL, bin integer NOT NULL,"


def upgrade() -> None:
    for period in ("day", "month"):
        op.execute(
            f"CREATE TABLE reaction_delay_{period}s ({KEYS.format(start=period)}"
            f" n bigint NOT NULL, PRIMARY KEY (community_id, tz, {period}, bin))"
        )
        # Every registered zone's rows move as they are: the counts stay exact.
        op.execute(
            f"INSERT INTO reaction_delay_{period}s SELECT community_id, tz, start, bin, n"
            f" FROM reaction_delays WHERE period = '{period}' ORDER BY 1, 2, 3, 4"
        )
    op.execute("DROP TABLE reaction_delays")


def downgrade() -> None:
    op.execute(
        "CREATE TABLE reaction_delays (community_id text NOT NULL, tz text NOT NULL,"
        " period text NOT NULL, start date NOT NULL, bin integer NOT NULL, n bigint NOT NULL,"
        " PRIMARY KEY (community_id, tz, period, start, bin))"
    )
    for period in ("day", "month"):
        op.execute(
            f"INSERT INTO reaction_delays SELECT community_id, tz, '{period}', {period}, bin, n"
            f" FROM reaction_delay_{period}s"
        )
        op.execute(f"DROP TABLE reaction_delay_{period}s")
