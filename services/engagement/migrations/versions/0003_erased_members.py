"""Erasure: the members this service was told are erased, and indexes to find their words.

Revision ID: en0003
"""

from alembic import op

revision = "en0003"
down_revision = "en0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Kept, not rebuilt: a later write (a late feedback, a thanks) checks it and keeps no words
    # of an erased member. Ids and the moment only: nothing personal.
    op.execute(
        """
        CREATE TABLE erased_members (
            community_id text NOT NULL,
            member_id    uuid NOT NULL,
            erased_at    timestamptz NOT NULL,
            PRIMARY KEY (community_id, member_id)
        )
        """
    )
    # Partial: only rows that still hold words, so the indexes stay small and an erasure finds
    # a member's words without scanning the community's feedback or thanks.
    op.execute("CREATE INDEX feedback_words_by_member ON feedback (member_id) WHERE body <> ''")
    op.execute("CREATE INDEX feedback_answers_by_member ON feedback (answered_by)"
               " WHERE answer IS NOT NULL")
    op.execute("CREATE INDEX thanks_reasons_to_member ON thanks (to_member)"
               " WHERE reason IS NOT NULL")
    op.execute("CREATE INDEX thanks_reasons_by_member ON thanks (by_member)"
               " WHERE reason IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX thanks_reasons_by_member, thanks_reasons_to_member,"
               " feedback_answers_by_member, feedback_words_by_member")
    op.execute("DROP TABLE erased_members")
