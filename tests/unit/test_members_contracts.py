"""Every member event the domain decides matches its published JSON Schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gatherly.contracts import ContractViolation, schemas, validate
from services.members import domain

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
MEMBER = domain.Member(id="m1", community_id="c1", channel="vk",
                       status=domain.MemberStatus.ACTIVE, joined_at=T0, version=1)
LEFT = domain.Member(id="m1", community_id="c1", channel="vk",
                     status=domain.MemberStatus.LEFT, joined_at=T0, left_at=T0, version=2)


def test_every_member_event_type_has_a_published_schema() -> None:
    types = {value for name, value in vars(domain).items()
             if name.isupper() and isinstance(value, str) and value.startswith("gatherly.")}
    assert types <= set(schemas())
    assert len(types) == 7


def test_every_member_decision_matches_its_contract() -> None:
    decided = [
        *domain.join("m1", channel="telegram", joined_at=T0, external_ref="h1:" + "a" * 64),
        *domain.rejoin(LEFT, channel="email", rejoined_at=T0),
        *domain.assign_role(MEMBER, "storyteller", at=T0),
        *domain.remove_role(domain.Member(**{**{f: getattr(MEMBER, f) for f in MEMBER.__slots__},
                                             "roles": frozenset({"hero"})}), "hero", at=T0),
        *domain.update_profile(MEMBER, ["email", "interests"], at=T0),
        *domain.erase(MEMBER, at=T0),
    ]
    assert len(decided) == 6
    for event in decided:
        validate(event.type, event.data)


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("gatherly.member.role_assigned", {"role": "wizard"}),
        ("gatherly.member.profile_updated", {"fields": ["Ann"]}),
        ("gatherly.member.profile_updated", {"fields": ["email"], "email": "a@b.c"}),
        ("gatherly.member.erased", {"erased_at": T0.isoformat(), "display_name": "Ann"}),
    ],
)
def test_personal_values_cannot_enter_member_events(
    event_type: str, data: dict[str, object]
) -> None:
    with pytest.raises(ContractViolation):
        validate(event_type, data)
