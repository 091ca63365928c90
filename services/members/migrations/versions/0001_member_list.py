"""The member list read model, kept in the same transaction as the member's events.

Revision ID: m0001
"""

from alembic import op

revision = "m0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE member_list (
            listed      bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            id          uuid PRIMARY KEY,
            community_id text NOT NULL,
            channel     text NOT NULL,
            status      text NOT NULL,
            invited_by  uuid,
            external_ref text,
            joined_at   timestamptz NOT NULL,
            left_at     timestamptz,
            version     integer NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX member_list_by_community ON member_list (community_id, listed)")
    op.execute(
        "CREATE UNIQUE INDEX member_list_external_ref"
        " ON member_list (community_id, channel, external_ref) WHERE external_ref IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE member_list")
