"""Content rollups read faster:

- the reaction delay bins' monthly rows get a table of their own (`reaction_delay_months`), the
  daily ones too (`reaction_delay_days`), keyed like the other rollups (facts/speed.py): a
  year's ~10,000 monthly rows were scattered among the daily ones, over ~1,500 heap pages;
- platforms' counter snapshots rolled up per zone and local day (`view_counter_days`,
  `reaction_counter_days`; facts/counters.py), filled here for the zones already registered;
- reactions added and removed per zone and local day alone (`reaction_total_days`, a rollup of
  facts/rollups.py), filled from `reaction_days` for the zones already registered.

Revision ID: kpi0014
"""

from alembic import op

from services.kpi.facts import counters

revision = "kpi0014"
down_revision = "kpi0013"
branch_labels = None
depends_on = None

KEYS = "community_id text NOT NULL, tz text NOT NULL, {start} date NOT NULL, bin integer NOT NULL,"
COUNTERS = {"view_counter_days": "channel", "reaction_counter_days": "channel, kind"}


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
    for table, dims in COUNTERS.items():
        columns = " ".join(f"{d} text NOT NULL," for d in dims.split(", "))
        op.execute(
            f"CREATE TABLE {table} (community_id text NOT NULL, tz text NOT NULL,"
            f" day date NOT NULL, {columns} n bigint NOT NULL, snapshots integer NOT NULL,"
            f" PRIMARY KEY (community_id, tz, day, {dims}))"
        )
    for sql in counters.backfill("TRUE").values():
        op.execute(sql)
    op.execute(
        "CREATE TABLE reaction_total_days (community_id text NOT NULL, tz text NOT NULL,"
        " day date NOT NULL, added boolean NOT NULL, n bigint NOT NULL,"
        " PRIMARY KEY (community_id, tz, day, added))"
    )
    op.execute(
        "INSERT INTO reaction_total_days SELECT community_id, tz, day, added, sum(n)"
        " FROM reaction_days GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    for table in ("reaction_total_days", *COUNTERS):
        op.execute(f"DROP TABLE {table}")
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
