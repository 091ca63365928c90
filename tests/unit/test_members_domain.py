"""The member aggregate, pure: no database, no bus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatherly.channels import known_channel
from gatherly.envelope import DomainEvent, Envelope
from services.members import domain

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def stored(member_id: str, events: list[DomainEvent], start: int = 1) -> list[Envelope]:
    return [
        Envelope(id=f"e{i}", source="/gatherly/members", type=e.type, subject=member_id,
                 community_id="c1", sequence=i, time=e.time, data=e.data)
        for i, e in enumerate(events, start=start)
    ]


def test_a_join_records_channel_referrer_and_time() -> None:
    [event] = domain.join("m1", channel="referral", joined_at=T0, invited_by="m0")
    assert event.type == "gatherly.member.joined"
    assert event.data == {"channel": "referral", "joined_at": T0.isoformat(), "invited_by": "m0"}
    member = domain.replay(stored("m1", [event]))
    assert member is not None
    assert (member.status, member.version, member.invited_by) == ("active", 1, "m0")


@pytest.mark.parametrize("channel", ["telegram", "online_event", "my-club_2"])
def test_built_in_and_custom_slug_channels_are_accepted(channel: str) -> None:
    assert known_channel(channel)


@pytest.mark.parametrize("channel", ["", "X", "Telegram", "has space", "a" * 40, "gatherly.>"])
def test_other_channels_are_refused(channel: str) -> None:
    with pytest.raises(domain.DomainError):
        domain.join("m1", channel=channel, joined_at=T0)


def test_a_member_cannot_invite_themselves() -> None:
    with pytest.raises(domain.DomainError):
        domain.join("m1", channel="vk", joined_at=T0, invited_by="m1")


def test_a_member_leaves_once_and_not_before_joining() -> None:
    member = domain.replay(stored("m1", domain.join("m1", channel="vk", joined_at=T0)))
    assert member is not None
    with pytest.raises(domain.DomainError):
        domain.leave(member, left_at=T0 - timedelta(days=1))
    [left] = domain.leave(member, left_at=T0 + timedelta(days=3), reason="moved")
    after = domain.evolve(member, stored("m1", [left], start=2)[0])
    assert (after.status, after.version, after.left_at) == ("left", 2, T0 + timedelta(days=3))
    with pytest.raises(domain.DomainError):
        domain.leave(after, left_at=T0 + timedelta(days=4))


def test_an_event_before_the_join_is_refused() -> None:
    [left] = stored("m1", [DomainEvent("gatherly.member.left", {}, T0)])
    with pytest.raises(domain.DomainError):
        domain.evolve(None, left)


def joined_member(roles: frozenset[str] = frozenset()) -> domain.Member:
    member = domain.replay(stored("m1", domain.join("m1", channel="vk", joined_at=T0)))
    assert member is not None
    return domain.Member(**{**{f: getattr(member, f) for f in member.__slots__}, "roles": roles})


def test_a_member_may_hold_several_roles_and_a_held_role_records_nothing() -> None:
    member = joined_member()
    [mentor] = domain.assign_role(member, "mentor", at=T0)
    member = domain.evolve(member, stored("m1", [mentor], start=2)[0])
    [scout] = domain.assign_role(member, "scout", at=T0)
    member = domain.evolve(member, stored("m1", [scout], start=3)[0])
    assert member.roles == {"mentor", "scout"} and member.version == 3
    assert domain.assign_role(member, "mentor", at=T0) == []
    [removed] = domain.remove_role(member, "mentor", at=T0)
    member = domain.evolve(member, stored("m1", [removed], start=4)[0])
    assert member.roles == {"scout"}
    assert domain.remove_role(member, "mentor", at=T0) == []


def test_an_unknown_role_is_refused_by_name() -> None:
    with pytest.raises(domain.DomainError) as refused:
        domain.assign_role(joined_member(), "wizard", at=T0)
    assert refused.value.rule == "role" and "wizard" in str(refused.value)


def test_only_a_member_who_left_can_rejoin_and_keeps_their_id() -> None:
    member = joined_member()
    with pytest.raises(domain.DomainError):
        domain.rejoin(member, channel="vk", rejoined_at=T0)
    [left] = domain.leave(member, left_at=T0 + timedelta(days=1))
    member = domain.evolve(member, stored("m1", [left], start=2)[0])
    with pytest.raises(domain.DomainError):
        domain.rejoin(member, channel="vk", rejoined_at=T0)
    [back] = domain.rejoin(member, channel="telegram", rejoined_at=T0 + timedelta(days=2))
    member = domain.evolve(member, stored("m1", [back], start=3)[0])
    assert (member.id, member.status, member.left_at, member.version) == ("m1", "active", None, 3)


def test_a_profile_update_names_fields_only_and_nothing_changed_records_nothing() -> None:
    member = joined_member()
    [updated] = domain.update_profile(member, ["email", "display_name"], at=T0)
    assert updated.data == {"fields": ["display_name", "email"]}
    assert domain.update_profile(member, [], at=T0) == []


def test_an_erased_member_accepts_no_further_command() -> None:
    member = joined_member()
    [erased] = domain.erase(member, at=T0)
    member = domain.evolve(member, stored("m1", [erased], start=2)[0])
    assert member.status == "erased" and member.external_ref_hash is None
    for command in (
        lambda: domain.leave(member, left_at=T0),
        lambda: domain.assign_role(member, "hero", at=T0),
        lambda: domain.update_profile(member, ["city"], at=T0),
        lambda: domain.erase(member, at=T0),
    ):
        with pytest.raises(domain.DomainError):
            command()


def test_with_the_communitys_channels_known_only_those_custom_channels_are_accepted() -> None:
    custom = frozenset({"alumni-chat"})
    assert known_channel("telegram", custom)
    assert known_channel("alumni-chat", custom)
    assert not known_channel("other-club", custom)
    assert known_channel("other-club", None)  # a direct call: any custom slug
    with pytest.raises(domain.DomainError) as refused:
        domain.join("m1", channel="other-club", joined_at=T0, custom_channels=custom)
    assert refused.value.rule == "channel" and "alumni-chat" in str(refused.value)


def test_a_leave_cannot_predate_the_rejoin_it_ends() -> None:
    """QA finding (fails on f581aa7): join, leave, rejoin, then a leave dated between the first
    leave and the rejoin was accepted, and the KPI's member total for that month went to -1."""
    member = joined_member()
    [left] = domain.leave(member, left_at=T0 + timedelta(days=10))
    member = domain.evolve(member, stored("m1", [left], start=2)[0])
    [back] = domain.rejoin(member, channel="vk", rejoined_at=T0 + timedelta(days=60))
    member = domain.evolve(member, stored("m1", [back], start=3)[0])
    with pytest.raises(domain.DomainError):
        domain.leave(member, left_at=T0 + timedelta(days=30))


def test_a_join_leave_or_rejoin_dated_ahead_of_the_clocks_is_refused() -> None:
    now = T0 + timedelta(days=1)
    domain.check_happened(now + timedelta(minutes=4), now, rule="left_at")
    with pytest.raises(domain.DomainError) as refused:
        domain.check_happened(now + timedelta(days=365), now, rule="rejoined_at")
    assert refused.value.rule == "rejoined_at" and "future" in str(refused.value)
