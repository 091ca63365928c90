"""The partner sources each community accepts deliveries from, with their secrets.

Revision ID: in0001
"""

from alembic import op

revision = "in0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Secrets are kept as given: a Standard Webhooks key must be usable to compute the HMAC, and
    # the Telegram and VK tokens are compared, not derived. Several during a rotation.
    op.execute(
        """
        CREATE TABLE inbound_sources (
            community_id  text NOT NULL,
            name          text NOT NULL,
            kind          text NOT NULL CHECK (kind IN ('standard', 'telegram', 'vk')),
            secrets       text[] NOT NULL CHECK (cardinality(secrets) BETWEEN 1 AND 5),
            confirmation  text,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (community_id, name)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE inbound_sources")
