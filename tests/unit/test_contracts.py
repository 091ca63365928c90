"""The published event catalogue: every schema is valid, and what services emit matches it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from gatherly.contracts import ContractViolation, schemas, validate
from gatherly.envelope import TYPE_PATTERN
from services.members import domain as members

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("event_type", sorted(schemas()))
def test_every_published_schema_is_a_valid_2020_12_schema(event_type: str) -> None:
    Draft202012Validator.check_schema(schemas()[event_type])
    assert TYPE_PATTERN.match(event_type)


def test_member_decisions_match_their_contracts() -> None:
    member = members.Member(
        id="m1", community_id="c1", channel="vk", status=members.MemberStatus.ACTIVE,
        joined_at=T0, version=1,
    )
    decided = [
        *members.join("m1", channel="referral", joined_at=T0,
                      invited_by="6b1c9c8e-3a0e-4a5f-9a59-1f8f2b8e2d11", external_ref="tg:42"),
        *members.leave(member, left_at=T0, reason="moved away"),
    ]
    for event in decided:
        validate(event.type, event.data)


def test_data_outside_the_contract_is_refused() -> None:
    with pytest.raises(ContractViolation):
        validate("gatherly.member.joined", {"channel": "vk"})
    with pytest.raises(ContractViolation):
        validate("gatherly.member.joined",
                 {"channel": "vk", "joined_at": T0.isoformat(), "email": "a@b.c"})
    with pytest.raises(ContractViolation):
        validate("gatherly.member.unknown", {})
