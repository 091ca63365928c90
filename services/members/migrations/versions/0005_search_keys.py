"""Name and e-mail search by keys folded in Python (`personal.search_key`), not by `lower()`.

Postgres's `lower()` follows the database's ctype: under C (the embedded server's, which is also
built without ICU) it lowers only ASCII, so "Мария" stayed "Мария" while the API lower-cased
the query, and a name starting with a non-ASCII capital was never found. The keys are personal
data like the values they fold: they live in `member_profile`, and erasure deletes the row.

Existing profiles are backfilled here, a batch at a time in `member_id` order, so memory stays
bounded whatever the table's size.

Revision ID: m0005
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from services.members.personal import search_key

revision = "m0005"
down_revision = "m0004"
branch_labels = None
depends_on = None

BATCH = 10_000


def upgrade() -> None:
    op.execute("ALTER TABLE member_profile ADD COLUMN name_key text, ADD COLUMN email_key text")
    _backfill(op.get_bind())
    op.execute("DROP INDEX member_profile_name_prefix, member_profile_email_prefix")
    # Pattern ops: `LIKE 'key%'` uses these whatever the database's collation.
    op.execute(
        "CREATE INDEX member_profile_name_key ON member_profile (community_id, name_key"
        " text_pattern_ops)"
    )
    op.execute(
        "CREATE INDEX member_profile_email_key ON member_profile (community_id, email_key"
        " text_pattern_ops)"
    )


def _backfill(bind: Any) -> None:
    after = "00000000-0000-0000-0000-000000000000"
    while rows := bind.execute(sa.text(
        "SELECT member_id, display_name, email FROM member_profile WHERE member_id > :after"
        " AND (display_name IS NOT NULL OR email IS NOT NULL) ORDER BY member_id LIMIT :n"
    ), {"after": after, "n": BATCH}).all():
        bind.execute(sa.text(
            "UPDATE member_profile p SET name_key = k.name_key, email_key = k.email_key"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:emails AS text[]))"
            " AS k(member_id, name_key, email_key) WHERE p.member_id = k.member_id"
        ), {"ids": [str(r.member_id) for r in rows],
            "names": [search_key(r.display_name) for r in rows],
            "emails": [search_key(r.email) for r in rows]})
        after = str(rows[-1].member_id)


def downgrade() -> None:
    op.execute("DROP INDEX member_profile_name_key, member_profile_email_key")
    op.execute("ALTER TABLE member_profile DROP COLUMN name_key, DROP COLUMN email_key")
    op.execute(
        "CREATE INDEX member_profile_name_prefix"
        " ON member_profile (community_id, lower(display_name) text_pattern_ops)"
    )
    op.execute(
        "CREATE INDEX member_profile_email_prefix"
        " ON member_profile (community_id, lower(email) text_pattern_ops)"
    )
