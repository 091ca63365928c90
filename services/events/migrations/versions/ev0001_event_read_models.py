"""The events service's read models, kept in the same transaction as every append.

Revision ID: ev0001
"""

from alembic import op

revision = "ev0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per community event: its details (never on the log) and its current state, which
    # commands load instead of replaying a stream that may hold thousands of registrations.
    op.execute(
        """
        CREATE TABLE event_list (
            id            uuid PRIMARY KEY,
            community_id  text NOT NULL,
            title         text NOT NULL,
            description   text,
            format        text NOT NULL,
            place         text,
            link          text,
            starts_at     timestamptz NOT NULL,
            ends_at       timestamptz NOT NULL,
            time_zone     text NOT NULL,
            capacity      integer,
            channel       text NOT NULL,
            status        text NOT NULL,
            registered    integer NOT NULL DEFAULT 0,
            waitlisted    integer NOT NULL DEFAULT 0,
            attended      integer NOT NULL DEFAULT 0,
            cancel_reason text,
            finished_at   timestamptz,
            version       integer NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX event_list_by_start ON event_list (community_id, starts_at, id)")
    # One row per (event, member): registration, place in the waitlist, check-in. The *_seq
    # columns are the event version of that fact, so each list has a stable order and cursor.
    op.execute(
        """
        CREATE TABLE event_seat (
            event_id       uuid NOT NULL REFERENCES event_list (id),
            member_id      uuid NOT NULL,
            registration   text,
            channel        text,
            code           text,
            registered_at  timestamptz,
            registered_seq integer,
            queued         integer NOT NULL DEFAULT 0,
            checked_in_at  timestamptz,
            attended_seq   integer,
            walk_in        boolean,
            PRIMARY KEY (event_id, member_id)
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX event_seat_code ON event_seat (event_id, code)")
    op.execute(
        "CREATE INDEX event_seat_waitlist ON event_seat (event_id, queued)"
        " WHERE registration = 'waitlisted'"
    )
    op.execute(
        """
        CREATE TABLE event_followup (
            event_id     uuid NOT NULL REFERENCES event_list (id),
            task         text NOT NULL,
            community_id text NOT NULL,
            assignee     uuid,
            due_at       timestamptz NOT NULL,
            done_at      timestamptz,
            by_member    uuid,
            PRIMARY KEY (event_id, task)
        )
        """
    )
    op.execute(
        "CREATE INDEX event_followup_open ON event_followup (community_id, due_at, event_id, task)"
        " WHERE done_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE event_followup, event_seat, event_list")

