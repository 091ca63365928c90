"""Communities and their API keys (the secret only as a SHA-256 hash).

Revision ID: gw0001
"""

from alembic import op

revision = "gw0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE communities (
            id                  text PRIMARY KEY,
            name                text NOT NULL,
            slug                text NOT NULL UNIQUE,
            time_zone           text NOT NULL,
            custom_channels     text[] NOT NULL DEFAULT '{}',
            feedback_sla_hours  integer NOT NULL CHECK (feedback_sla_hours > 0),
            version             integer NOT NULL DEFAULT 1,
            created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
            seq                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE
        )
        """
    )
    op.execute(
        """
        CREATE TABLE api_keys (
            id               text PRIMARY KEY,
            community_id     text NOT NULL REFERENCES communities (id),
            name             text,
            scopes           text[] NOT NULL,
            secret_hash      bytea NOT NULL,
            rate_per_second  double precision CHECK (rate_per_second > 0),
            burst            integer CHECK (burst > 0),
            expires_at       timestamptz,
            revoked_at       timestamptz,
            created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
            seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE
        )
        """
    )
    op.execute("CREATE INDEX api_keys_by_community ON api_keys (community_id, seq)")


def downgrade() -> None:
    op.execute("DROP TABLE api_keys, communities")
