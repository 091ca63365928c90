"""Erasure in the engagement service, the pure part: which facts are erasures, whose words go."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gatherly.envelope import Envelope
from services.engagement.erasure import ERASED, Erasure, erasures, words_kept
from services.engagement.erasure_projection import build_projection

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
A, B, C = (str(uuid.uuid4()) for _ in range(3))


def fact(type_: str, subject: str, community: str = "c1", sequence: int = 2) -> Envelope:
    return Envelope(id=str(uuid.uuid4()), source="/gatherly/members", type=type_,
                    subject=subject, community_id=community, sequence=sequence, time=T0,
                    data={"erased_at": T0.isoformat()} if type_ == ERASED else {})


def test_only_erasures_are_taken_once_per_member_and_community() -> None:
    batch = [
        fact("gatherly.member.joined", C, sequence=1),
        fact(ERASED, A), fact(ERASED, A),  # the stream may bring one twice
        fact(ERASED, A, community="c2"),
        fact("gatherly.feedback.submitted", B, sequence=1),
    ]
    assert erasures(batch) == [Erasure("c1", A, T0), Erasure("c2", A, T0)]
    assert erasures([fact("gatherly.member.left", A)]) == []


def test_words_by_or_about_an_erased_member_are_not_kept() -> None:
    erased = frozenset({A})
    assert words_kept("loud room", [A], erased) is None
    assert words_kept("for the intro", [B, A], erased) is None  # thanks given to A
    assert words_kept("for the intro", [B, None], erased) == "for the intro"
    assert words_kept(None, [A], erased) is None
    assert words_kept("thanks!", [B, C], frozenset()) == "thanks!"


def test_the_projection_is_the_registered_one() -> None:
    from gatherly.cli import load
    from gatherly.registry import PROJECTIONS

    projection = load(PROJECTIONS["engagement-erasure"])()
    assert projection.name == "engagement-erasure" == build_projection().name
    assert projection.schema == "engagement"
