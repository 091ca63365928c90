"""`first_attendance_days` dropped: the events KPI counts a period's new participants as those of
the events that start in it (`event_participants.new`), so nothing reads the days, and every
batch with an attendance still wrote them for every zone.

Revision ID: kpi0021
"""

from alembic import op

revision = "kpi0021"
down_revision = "kpi0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE first_attendance_days")


def downgrade() -> None:
    op.execute(
        "CREATE TABLE first_attendance_days (community_id text NOT NULL, tz text NOT NULL,"
        " day date NOT NULL, n bigint NOT NULL, PRIMARY KEY (community_id, tz, day))"
    )
    op.execute(
        "INSERT INTO first_attendance_days (community_id, tz, day, n)"
        " SELECT f.community_id, z.tz, CAST(f.checked_in_at AT TIME ZONE z.tz AS date), count(*)"
        " FROM first_attendances f JOIN kpi_zones z ON z.community_id = f.community_id"
        " GROUP BY 1, 2, 3"
    )
