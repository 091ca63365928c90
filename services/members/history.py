"""A member's own events in plain words a frontend can show, newest first. Pure."""

from __future__ import annotations

from typing import Any, NamedTuple

from gatherly.envelope import Envelope
from services.members import domain


class HistoryEntry(NamedTuple):
    event: Envelope
    summary: str
    data: dict[str, Any]  # what may be shown of the event's data


_CHANNEL_NAMES = {
    "telegram": "Telegram", "vk": "VK", "facebook": "Facebook", "email": "e-mail",
    "youtube": "YouTube", "website": "the website", "offline": "an offline meeting",
    "online_event": "an online event", "referral": "a referral",
}
_FIELD_NAMES = {
    "display_name": "display name", "email": "e-mail", "handles": "handles", "city": "city",
    "interests": "interests",
}


def channel_words(channel: str) -> str:
    return _CHANNEL_NAMES.get(channel, channel.replace("_", " ").replace("-", " "))


def summary(event: Envelope, *, erased: bool = False) -> str:
    """One sentence about one event. Free text (a leave reason) is left out once the member
    is erased: it may say something personal, and the log itself cannot be rewritten."""
    data = event.data
    if event.type == domain.JOINED:
        words = f"Joined via {channel_words(str(data['channel']))}"
        return words + (", invited by another member" if data.get("invited_by") else "")
    if event.type == domain.REJOINED:
        return f"Came back via {channel_words(str(data['channel']))}"
    if event.type == domain.LEFT:
        reason = data.get("reason")
        return f"Left the community: {reason}" if reason and not erased else "Left the community"
    if event.type == domain.ROLE_ASSIGNED:
        return f"Became a {data['role']}"
    if event.type == domain.ROLE_REMOVED:
        return f"Is no longer a {data['role']}"
    if event.type == domain.PROFILE_UPDATED:
        names = ", ".join(_FIELD_NAMES.get(str(f), str(f)) for f in data.get("fields", []))
        return f"Updated their profile: {names}"
    if event.type == domain.ERASED:
        return "Personal data erased on request"
    return event.type.rsplit(".", 1)[-1].replace("_", " ").capitalize()


def shown_data(event: Envelope, *, erased: bool = False) -> dict[str, Any]:
    """The event's data as the history shows it: whole while the member exists, only the
    non-personal facts once they are erased: the fields the erasure leaves in the log itself,
    so the history never depends on the log having been redacted."""
    if not erased:
        return event.data
    kept = domain.NON_PERSONAL_FIELDS.get(event.type, frozenset())
    return {name: value for name, value in event.data.items() if name in kept}


def newest_first(events: list[Envelope]) -> list[HistoryEntry]:
    erased = any(event.type == domain.ERASED for event in events)
    return [HistoryEntry(event, summary(event, erased=erased), shown_data(event, erased=erased))
            for event in reversed(events)]
