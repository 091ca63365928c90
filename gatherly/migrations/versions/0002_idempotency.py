"""Idempotency-Key records, in every service schema (see gatherly/idempotency.py).

Revision ID: k0002
"""

from alembic import op

revision = "k0002"
down_revision = "k0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # status NULL: the first request still runs (a claim); otherwise its stored answer.
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key_id           text NOT NULL,
            community_id     text NOT NULL,
            idempotency_key  text NOT NULL,
            fingerprint      bytea NOT NULL,
            status           smallint,
            headers          jsonb,
            body             bytea,
            created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (key_id, community_id, idempotency_key)
        )
        """
    )
    op.execute("CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
