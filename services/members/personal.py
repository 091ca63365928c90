"""Personal data rules, pure: what a profile may hold, and the keyed hash of external references.

A member's id on a partner platform (a Telegram user id, a VK id) identifies a person, so it is
personal data: the log carries only a keyed hash of it (docs/adr/0003-member-personal-data.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

REF_HASH_PREFIX = "h1:"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_INTERESTS = 50
MAX_HANDLES = 20


class ProfileError(ValueError):
    """A profile value that breaks a rule; `field` names which."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def ref_hash(key: str, community_id: str, channel: str, external_ref: str) -> str:
    """Stable per (community, channel, reference), useless without the key: nobody holding only
    the log can test a guessed Telegram id, and one person's hashes differ across communities."""
    message = f"{community_id}\x1f{channel}\x1f{external_ref}".encode()
    # hmac.digest: the one-shot C path, a fraction of hmac.new's cost (an import hashes every row)
    return REF_HASH_PREFIX + hmac.digest(key.encode(), message, hashlib.sha256).hex()


def search_key(value: str | None) -> str | None:
    """What a name or e-mail is found by: case-folded in Python, for any script. Postgres's
    `lower()` follows the database's ctype, and the embedded server's is C (and built without
    ICU): it left "Мария" as it was while Python lower-cased the query. Kept with the profile,
    so it is personal data too, and erased with it.

    NFKC before and after the fold (compatibility caseless matching, Unicode §3.13): full-width
    letters, ligatures and a decomposed "Ü" find what they look like. Folding is per character,
    so the key of a prefix (cut where no mark combines) starts the whole's key, which a
    `LIKE 'key%'` on the key's index needs."""
    if value is None:
        return None
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


@dataclass(frozen=True, slots=True)
class Profile:
    """What the erasable store keeps about a member; every field is personal."""

    display_name: str | None = None
    email: str | None = None
    handles: Mapping[str, str] = field(default_factory=dict)
    city: str | None = None
    interests: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "email": self.email,
            "handles": dict(self.handles),
            "city": self.city,
            "interests": list(self.interests),
        }


PROFILE_FIELDS = tuple(f.name for f in fields(Profile))


def _text(name: str, value: Any, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError(name, "must be a string")
    value = value.strip()
    if len(value) > max_length:
        raise ProfileError(name, f"longer than {max_length} characters")
    return value or None


def _email(value: Any) -> str | None:
    email = _text("email", value, 254)
    if email is not None and not EMAIL.match(email):
        raise ProfileError("email", f"{email!r} is not an e-mail address")
    return email


def _handles(value: Any, valid_channel: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_HANDLES:
        raise ProfileError("handles", f"an object of at most {MAX_HANDLES} channel: handle pairs")
    handles: dict[str, str] = {}
    for channel, handle in value.items():
        if not isinstance(channel, str) or not valid_channel(channel):
            raise ProfileError("handles", f"unknown channel {channel!r}")
        text = _text(f"handles.{channel}", handle, 200)
        if text:
            handles[channel] = text
    return handles


def _interests(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ProfileError("interests", "a list of tags")
    tags = []
    for tag in value:
        if not isinstance(tag, str) or not TAG.match(tag.strip().lower()):
            raise ProfileError("interests", f"{tag!r} is not a tag (a-z, 0-9, _ or -)")
        tags.append(tag.strip().lower())
    unique = tuple(dict.fromkeys(tags))
    if len(unique) > MAX_INTERESTS:
        raise ProfileError("interests", f"at most {MAX_INTERESTS} tags")
    return unique


def profile_changes(values: Mapping[str, Any], valid_channel: Any) -> dict[str, Any]:
    """The given profile fields, checked and normalised; unknown names are refused."""
    unknown = set(values) - set(PROFILE_FIELDS)
    if unknown:
        raise ProfileError(sorted(unknown)[0], "not a profile field")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name == "display_name":
            checked[name] = _text(name, value, 200)
        elif name == "city":
            checked[name] = _text(name, value, 100)
        elif name == "email":
            checked[name] = _email(value)
        elif name == "handles":
            checked[name] = _handles(value, valid_channel)
        else:
            checked[name] = _interests(value)
    return checked


def apply_changes(profile: Profile, changes: Mapping[str, Any]) -> tuple[Profile, list[str]]:
    """The new profile and the names of the fields whose values actually changed."""
    updated = replace(profile, **changes)
    changed = [
        name for name in PROFILE_FIELDS if getattr(updated, name) != getattr(profile, name)
    ]
    return updated, changed
