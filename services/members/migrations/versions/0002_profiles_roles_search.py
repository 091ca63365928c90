"""Member profiles (the erasable store), roles, the keyed-hash external reference, search indexes.

Personal data moves out of `member_list`: the raw external reference now lives in
`member_profile` with the other personal fields, and `member_list` keeps only a keyed hash of it
for the "already known" check (docs/adr/0003-member-personal-data.md).

Revision ID: m0002
"""

import secrets

import sqlalchemy as sa
from alembic import op

from services.members.personal import ref_hash

revision = "m0002"
down_revision = "m0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE member_profile (
            member_id    uuid PRIMARY KEY REFERENCES member_list (id) ON DELETE CASCADE,
            community_id text NOT NULL,
            display_name text,
            email        text,
            handles      jsonb NOT NULL DEFAULT '{}'::jsonb,
            city         text,
            interests    text[] NOT NULL DEFAULT '{}',
            external_ref text
        )
        """
    )
    # Prefix search is case-insensitive: the indexes are on lower(), with pattern ops so that
    # `LIKE 'ann%'` can use them whatever the database's collation.
    op.execute(
        "CREATE INDEX member_profile_name_prefix"
        " ON member_profile (community_id, lower(display_name) text_pattern_ops)"
    )
    op.execute(
        "CREATE INDEX member_profile_email_prefix"
        " ON member_profile (community_id, lower(email) text_pattern_ops)"
    )
    op.execute("CREATE INDEX member_profile_interests ON member_profile USING gin (interests)")
    op.execute(
        "INSERT INTO member_profile (member_id, community_id, external_ref)"
        " SELECT id, community_id, external_ref FROM member_list WHERE external_ref IS NOT NULL"
    )
    # The key of the external-reference hash: made here, once per deployment, never in code.
    op.execute(
        "CREATE TABLE ref_hash_key (only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),"
        " key text NOT NULL)"
    )
    key = secrets.token_hex(32)
    op.execute(f"INSERT INTO ref_hash_key (key) VALUES ('{key}')")
    op.execute("DROP INDEX member_list_external_ref")
    op.execute("ALTER TABLE member_list ADD COLUMN external_ref_hash text")
    bind = op.get_bind()
    known = bind.execute(
        sa.text("SELECT id, community_id, channel, external_ref FROM member_list"
                " WHERE external_ref IS NOT NULL")
    ).all()
    for row in known:
        bind.execute(
            sa.text("UPDATE member_list SET external_ref_hash = :h WHERE id = :id"),
            {"h": ref_hash(key, row.community_id, row.channel, row.external_ref), "id": row.id},
        )
    op.execute("ALTER TABLE member_list DROP COLUMN external_ref")
    op.execute("ALTER TABLE member_list ADD COLUMN roles text[] NOT NULL DEFAULT '{}'")
    op.execute(
        "CREATE UNIQUE INDEX member_list_external_ref"
        " ON member_list (community_id, channel, external_ref_hash)"
        " WHERE external_ref_hash IS NOT NULL"
    )
    op.execute("CREATE INDEX member_list_roles ON member_list USING gin (roles)")
    op.execute("CREATE INDEX member_list_joined ON member_list (community_id, joined_at, listed)")
    op.execute("CREATE INDEX member_list_status ON member_list (community_id, status, listed)")


def downgrade() -> None:
    op.execute("DROP INDEX member_list_status, member_list_joined, member_list_roles")
    op.execute("DROP INDEX member_list_external_ref")
    op.execute("ALTER TABLE member_list DROP COLUMN roles, DROP COLUMN external_ref_hash")
    op.execute("ALTER TABLE member_list ADD COLUMN external_ref text")
    op.execute(
        "UPDATE member_list l SET external_ref = p.external_ref"
        " FROM member_profile p WHERE p.member_id = l.id"
    )
    op.execute(
        "CREATE UNIQUE INDEX member_list_external_ref"
        " ON member_list (community_id, channel, external_ref) WHERE external_ref IS NOT NULL"
    )
    op.execute("DROP TABLE ref_hash_key, member_profile")
