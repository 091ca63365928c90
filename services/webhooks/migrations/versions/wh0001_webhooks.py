"""Subscriptions, their secrets, one delivery per (subscription, fact), and every attempt.

Revision ID: wh0001
"""

from alembic import op

revision = "wh0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # failing_since: the first failed attempt of the current unbroken run of failures.
    op.execute(
        """
        CREATE TABLE subscriptions (
            listed          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            id              uuid PRIMARY KEY,
            community_id    text NOT NULL,
            url             text NOT NULL,
            event_types     text[] NOT NULL,
            description     text NOT NULL DEFAULT '',
            enabled         boolean NOT NULL DEFAULT true,
            disabled_reason text,
            failing_since   timestamptz,
            version         integer NOT NULL DEFAULT 1,
            created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )
    op.execute("CREATE INDEX subscriptions_enabled ON subscriptions (community_id) WHERE enabled")
    # A secret with expires_at NULL is the current one; a rotated one signs until it expires.
    op.execute(
        """
        CREATE TABLE subscription_secrets (
            subscription_id uuid NOT NULL REFERENCES subscriptions ON DELETE CASCADE,
            secret          text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            expires_at      timestamptz,
            PRIMARY KEY (subscription_id, secret)
        )
        """
    )
    # id is the order the fan-out recorded deliveries in: each endpoint is served in that order.
    op.execute(
        """
        CREATE TABLE deliveries (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subscription_id uuid NOT NULL REFERENCES subscriptions ON DELETE CASCADE,
            community_id    text NOT NULL,
            event_id        uuid NOT NULL,
            event_type      text NOT NULL,
            message_id      text NOT NULL,
            body            text NOT NULL,
            status          text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            leased_until    timestamptz,
            created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            finished_at     timestamptz,
            UNIQUE (subscription_id, event_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX deliveries_pending ON deliveries (subscription_id, id)"
        " WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX deliveries_failed ON deliveries (subscription_id, created_at)"
        " WHERE status = 'failed'"
    )
    op.execute(
        """
        CREATE TABLE delivery_attempts (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            delivery_id      bigint NOT NULL REFERENCES deliveries ON DELETE CASCADE,
            attempted_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            status_code      integer,
            latency_ms       integer NOT NULL,
            error_class      text,
            response_excerpt text NOT NULL DEFAULT '',
            verdict          text NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX delivery_attempts_of ON delivery_attempts (delivery_id, id)")


def downgrade() -> None:
    op.execute("DROP TABLE delivery_attempts, deliveries, subscription_secrets, subscriptions")
