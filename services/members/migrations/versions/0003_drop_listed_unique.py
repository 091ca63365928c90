"""The list's standalone unique index on `listed` goes: no query uses it that the community index
does not serve as well, and the bulk import paid for it on every row.

Every read of the list names its community and orders by `listed`, which
`member_list_by_community (community_id, listed)` serves; EXPLAIN ANALYZE of every search filter
at 100,000 members (docs/benchmarks.md, members import) picks it instead, at the same speed.
`listed` stays unique without an index: it is `GENERATED ALWAYS AS IDENTITY`, never written by
the service. The other indexes each serve a filter no other index does (status, role, joined
range, tag, name and e-mail prefix, the external reference's idempotence).

Revision ID: m0003
"""

from alembic import op

revision = "m0003"
down_revision = "m0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE member_list DROP CONSTRAINT member_list_listed_key")


def downgrade() -> None:
    op.execute("ALTER TABLE member_list ADD CONSTRAINT member_list_listed_key UNIQUE (listed)")
