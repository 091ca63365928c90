"""A member's history in plain words, pure."""

from __future__ import annotations

from datetime import UTC, datetime

from gatherly.envelope import Envelope
from services.members import domain
from services.members.history import newest_first

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def event(sequence: int, type_: str, data: dict[str, object]) -> Envelope:
    return Envelope(id=f"e{sequence}", source="/gatherly/members", type=type_, subject="m1",
                    community_id="c1", sequence=sequence, time=T0, data=data)


def test_history_reads_newest_first_in_plain_words() -> None:
    events = [
        event(1, domain.JOINED, {"channel": "telegram", "invited_by": "m0"}),
        event(2, domain.ROLE_ASSIGNED, {"role": "mentor"}),
        event(3, domain.PROFILE_UPDATED, {"fields": ["display_name", "email"]}),
        event(4, domain.LEFT, {"reason": "moved to Oslo"}),
        event(5, domain.REJOINED, {"channel": "online_event"}),
    ]
    assert [entry.summary for entry in newest_first(events)] == [
        "Came back via an online event",
        "Left the community: moved to Oslo",
        "Updated their profile: display name, e-mail",
        "Became a mentor",
        "Joined via Telegram, invited by another member",
    ]


def test_after_erasure_history_drops_free_text() -> None:
    events = [
        event(1, domain.JOINED, {"channel": "my-club"}),
        event(2, domain.LEFT, {"reason": "Ann moved to Oslo"}),
        event(3, domain.ERASED, {"erased_at": T0.isoformat()}),
    ]
    words = [entry.summary for entry in newest_first(events)]
    assert words == ["Personal data erased on request", "Left the community",
                     "Joined via my club"]


def test_after_erasure_history_data_keeps_only_non_personal_facts() -> None:
    events = [
        event(1, domain.JOINED, {"channel": "vk", "external_ref": "tg-777", "invited_by": "m0",
                                 "joined_at": T0.isoformat()}),
        event(2, domain.LEFT, {"reason": "Ann moved to Oslo", "left_at": T0.isoformat()}),
        event(3, domain.ROLE_ASSIGNED, {"role": "hero"}),
        event(4, domain.PROFILE_UPDATED, {"fields": ["city"]}),
        event(5, "gatherly.member.some_later_type", {"note": "Ann's words"}),
        event(6, domain.ERASED, {"erased_at": T0.isoformat()}),
    ]
    shown = {entry.event.sequence: entry.data for entry in newest_first(events)}
    assert shown == {
        1: {"channel": "vk", "invited_by": "m0", "joined_at": T0.isoformat()},
        2: {"left_at": T0.isoformat()},
        3: {"role": "hero"},
        4: {"fields": ["city"]},
        5: {},  # an unknown type shows nothing until its fields are judged non-personal
        6: {"erased_at": T0.isoformat()},
    }


def test_before_erasure_history_data_is_the_event_data() -> None:
    events = [event(1, domain.LEFT, {"reason": "moved to Oslo", "left_at": T0.isoformat()})]
    assert newest_first(events)[0].data == {"reason": "moved to Oslo", "left_at": T0.isoformat()}
