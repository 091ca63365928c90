"""Erasure (DESIGN §9, docs/adr/0003): what this service forgets when a member is erased. Pure.

The events carry ids and non-personal facts, and they stay. What goes is the words kept in this
service's own tables that were written by the member or are about them: a feedback's text and
the team's answer to it, an answer the member wrote, a thanks' reason given to or by the member.
The ids, statuses, ratings and moments stay, so every count stays as it was.

The members service records the erasure; this service hears of it from the stream, later. So
an erasure is also remembered here, and a write that comes after it (a late feedback from a
platform's backlog, an answer, a thanks) keeps no words of an erased member.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gatherly.contracts import MEMBER_ERASED
from gatherly.envelope import Envelope

ERASED = MEMBER_ERASED


@dataclass(frozen=True, slots=True)
class Erasure:
    community_id: str
    member_id: str
    erased_at: datetime


def erasures(events: Iterable[Envelope]) -> list[Erasure]:
    """The batch's erasures, one per member (the stream may repeat one)."""
    found: dict[tuple[str, str], Erasure] = {}
    for event in events:
        if event.type == ERASED:
            found.setdefault((event.community_id, event.subject),
                             Erasure(event.community_id, event.subject, event.time))
    return list(found.values())


def words_kept(
    words: str | None, people: Iterable[str | None], erased: frozenset[str]
) -> str | None:
    """`words` written by or about `people`, unless one of them is erased: then nothing."""
    if any(person in erased for person in people if person):
        return None
    return words
