"""Active members without `active_seen`: the projection finds a member's active days, and a new
zone's backfill all of them, from `activity` (keyed by member and minute since kpi0017), so a
batch no longer writes a row per new active day and zone, and a zone's backfill no longer
copies every member's days. `active_gaps` keeps a month row only where the previous day is
before the month: a pair inside one month never counts for a month a window holds whole
(facts/active.py), so those rows were written and never read.

The fact tables' indexes by time go: every question reads rollups, the projection reads its fact
tables by their keys (and reactions by content), a zone's backfill reads a community's rows
whole; each cost an index entry per fact written.

Revision ID: kpi0018
"""

from alembic import op

revision = "kpi0018"
down_revision = "kpi0017"
branch_labels = None
depends_on = None

BY_TIME = {
    "views_by_time": "views (community_id, at)",
    "reaction_facts_by_time": "reaction_facts (community_id, at)",
    "member_changes_by_time": "member_changes (community_id, at)",
    "content_by_publication": "content (community_id, published_at)",
}
MONTH = "CAST(date_trunc('month', CAST(start AS timestamp)) AS date)"


def upgrade() -> None:
    op.execute("DROP TABLE active_seen")
    op.execute("DELETE FROM active_gaps WHERE period = 'month' AND previous >= start")
    op.execute(f"DROP INDEX {', '.join(BY_TIME)}")


def downgrade() -> None:
    for name, columns in BY_TIME.items():
        op.execute(f"CREATE INDEX {name} ON {columns}")
    op.execute(
        "CREATE TABLE active_seen (community_id text NOT NULL, tz text NOT NULL,"
        " period text NOT NULL, start date NOT NULL, member_id text NOT NULL,"
        " PRIMARY KEY (community_id, tz, member_id, period, start))"
    )
    op.execute(
        "INSERT INTO active_seen (community_id, tz, period, start, member_id)"
        " SELECT DISTINCT s.community_id, z.tz, 'day', CAST(s.at AT TIME ZONE z.tz AS date),"
        " s.member_id FROM activity s JOIN kpi_zones z ON z.community_id = s.community_id"
    )
    # The month rows of pairs inside one month, as the projection before kpi0018 kept them.
    op.execute(
        "INSERT INTO active_gaps (community_id, tz, period, start, previous, n)"
        f" SELECT community_id, tz, 'month', {MONTH}, previous, sum(n) FROM active_gaps"
        f" WHERE period = 'day' AND previous >= {MONTH} GROUP BY 1, 2, 4, 5"
    )
