"""Receipts of inbound deliveries, in every service schema (see gatherly/inbound.py).

Revision ID: k0003
"""

from alembic import op

revision = "k0003"
down_revision = "k0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # answer NULL: claimed by a transaction still recording the part's facts.
    op.execute(
        """
        CREATE TABLE inbound_receipts (
            community_id  text NOT NULL,
            source        text NOT NULL,
            webhook_id    text NOT NULL,
            part          text NOT NULL,
            answer        jsonb,
            recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (community_id, source, webhook_id, part)
        )
        """
    )
    op.execute("CREATE INDEX inbound_receipts_recorded ON inbound_receipts (recorded_at)")


def downgrade() -> None:
    op.execute("DROP TABLE inbound_receipts")
