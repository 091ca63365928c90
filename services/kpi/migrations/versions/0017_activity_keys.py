"""One index each for `activity` and `active_seen`, keyed by member: every active day a batch adds
wrote three index entries into `active_seen` and every activity minute two into `activity`, and
the projection's activity statement (facts/active.py) is the largest part of its database time.

`active_seen`'s key becomes (community, zone, member, period, start): the nearest-day lookups
around a new day and the batch's `ON CONFLICT DO NOTHING` read it, so `active_seen_days` (the
same columns) goes, and erasure renames a member's rows through it per zone (facts/identity.py),
so `active_seen_by_member` goes. `activity`'s key becomes (community, member, minute): erasure
reads it, so `activity_by_member` goes; nothing reads activity by time alone (a new zone's
backfill reads a community's rows whole).

Revision ID: kpi0017
"""

from alembic import op

revision = "kpi0017"
down_revision = "kpi0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE activity DROP CONSTRAINT activity_pkey,"
                " ADD PRIMARY KEY (community_id, member_id, at)")
    op.execute("DROP INDEX activity_by_member")
    op.execute("ALTER TABLE active_seen DROP CONSTRAINT active_seen_pkey,"
                " ADD PRIMARY KEY (community_id, tz, member_id, period, start)")
    op.execute("DROP INDEX active_seen_days")
    op.execute("DROP INDEX active_seen_by_member")


def downgrade() -> None:
    op.execute("CREATE INDEX active_seen_by_member ON active_seen (community_id, member_id)")
    op.execute("CREATE INDEX active_seen_days ON active_seen (community_id, tz, member_id, start)"
                " WHERE period = 'day'")
    op.execute("ALTER TABLE active_seen DROP CONSTRAINT active_seen_pkey,"
                " ADD PRIMARY KEY (community_id, tz, period, start, member_id)")
    op.execute("CREATE INDEX activity_by_member ON activity (community_id, member_id)")
    op.execute("ALTER TABLE activity DROP CONSTRAINT activity_pkey,"
                " ADD PRIMARY KEY (community_id, at, member_id)")
