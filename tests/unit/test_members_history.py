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
    assert [words for _, words in newest_first(events)] == [
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
    words = [w for _, w in newest_first(events)]
    assert words == ["Personal data erased on request", "Left the community",
                     "Joined via my club"]
