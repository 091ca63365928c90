"""Members erased before the erasure redacted the log: their events keep only the non-personal
fields, as an erasure now leaves them (`EventStore.redact` with `domain.NON_PERSONAL_FIELDS`,
docs/adr/0003). A leave's free-text reason and a join's `external_ref` go. The allow-list is
copied here as it stands today, so the migration does what it did whatever the list becomes.

Revision ID: m0004
"""

import json

from alembic import op

revision = "m0004"
down_revision = "m0003"
branch_labels = None
depends_on = None

KEPT = {
    "gatherly.member.joined": ["channel", "invited_by", "joined_at"],
    "gatherly.member.rejoined": ["channel", "rejoined_at"],
    "gatherly.member.left": ["left_at"],
    "gatherly.member.role_assigned": ["role"],
    "gatherly.member.role_removed": ["role"],
    "gatherly.member.profile_updated": ["fields"],
    "gatherly.member.erased": ["erased_at"],
}


def upgrade() -> None:
    kept = json.dumps(KEPT).replace("'", "''")
    op.execute(
        "UPDATE events e SET data = (SELECT coalesce(jsonb_object_agg(f.key, f.value), '{}')"
        f" FROM jsonb_each(e.data) f WHERE CAST('{kept}' AS jsonb) -> e.type ? f.key)"
        " WHERE e.stream_id IN (SELECT stream_id FROM events WHERE type = 'gatherly.member.erased')"
    )


def downgrade() -> None:
    """The words are gone: nothing to restore."""
