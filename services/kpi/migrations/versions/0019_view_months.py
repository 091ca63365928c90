"""Monthly rollups of views and of platforms' counter snapshots, so a window's whole months read
12 rows per channel a year, not ~365 (the summary and the channels ranking, issue #6):

- `view_months`: views per zone, local month and channel (a rollup of facts/rollups.py), filled
  from `view_days` for the zones already registered (the same sums, regrouped);
- `view_counter_months`, `reaction_counter_months`: facts/counters.py's rollups per local month,
  filled from the snapshots stored for the zones already registered.

Revision ID: kpi0019
"""

from alembic import op

from services.kpi.facts import counters

revision = "kpi0019"
down_revision = "kpi0018"
branch_labels = None
depends_on = None

MONTH = "CAST(date_trunc('month', CAST(day AS timestamp)) AS date)"
MONTHS = {"view_counter_months": "channel", "reaction_counter_months": "channel, kind"}


def upgrade() -> None:
    op.execute(
        "CREATE TABLE view_months (community_id text NOT NULL, tz text NOT NULL,"
        " month date NOT NULL, channel text NOT NULL, n bigint NOT NULL,"
        " PRIMARY KEY (community_id, tz, month, channel))"
    )
    op.execute(
        f"INSERT INTO view_months SELECT community_id, tz, {MONTH}, channel, sum(n)"
        " FROM view_days GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    for table, dims in MONTHS.items():
        columns = " ".join(f"{d} text NOT NULL," for d in dims.split(", "))
        op.execute(
            f"CREATE TABLE {table} (community_id text NOT NULL, tz text NOT NULL,"
            f" month date NOT NULL, {columns} n bigint NOT NULL, snapshots integer NOT NULL,"
            f" PRIMARY KEY (community_id, tz, month, {dims}))"
        )
    for sql in counters.backfill("TRUE", "months").values():
        op.execute(sql)


def downgrade() -> None:
    for table in ("view_months", *MONTHS):
        op.execute(f"DROP TABLE {table}")
