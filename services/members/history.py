"""A member's own events in plain words a frontend can show, newest first. Pure."""

from __future__ import annotations

from gatherly.envelope import Envelope
from services.members import domain

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


def newest_first(events: list[Envelope]) -> list[tuple[Envelope, str]]:
    erased = any(event.type == domain.ERASED for event in events)
    return [(event, summary(event, erased=erased)) for event in reversed(events)]
