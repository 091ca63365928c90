"""Event store, relay checkpoint and projection bookkeeping.

Revision ID: k0001
"""

from alembic import op

revision = "k0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE events (
            position     bigint GENERATED ALWAYS AS IDENTITY,
            tx_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
            id           uuid PRIMARY KEY,
            stream_id    text NOT NULL,
            community_id text NOT NULL,
            type         text NOT NULL,
            version      integer NOT NULL CHECK (version > 0),
            occurred_at  timestamptz NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            data         jsonb NOT NULL,
            traceparent  text,
            UNIQUE (stream_id, version)
        )
        """
    )
    op.execute("CREATE INDEX events_commit_order ON events (tx_id, position)")
    op.execute(
        """
        CREATE TABLE relay_checkpoint (
            relay       text PRIMARY KEY,
            tx_id       bigint NOT NULL,
            position    bigint NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE projection_checkpoint (
            projection  text PRIMARY KEY,
            stream_seq  bigint NOT NULL DEFAULT 0,
            generation  integer NOT NULL DEFAULT 1,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE projection_applied (
            projection  text NOT NULL,
            stream_id   text NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (projection, stream_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE projection_applied, projection_checkpoint, relay_checkpoint, events")
