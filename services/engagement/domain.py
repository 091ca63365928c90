"""What every engagement aggregate shares: the refusal, channels, kinds and derived ids. Pure.

Engagement keeps several small aggregates instead of one per content item, so a popular post is
never one hot stream: a view is its own stream, a member's reaction of one kind on one item is
one stream (added, removed, added… as its versions), a channel counter is one stream.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from datetime import datetime

from gatherly.channels import unknown_channel
from gatherly.envelope import in_the_future

BUILT_IN_REACTIONS = frozenset({"like", "love", "comment", "share", "repost"})
CONTENT_KINDS = ("post", "video", "article", "newsletter", "story", "other")
SLUG = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")


class DomainError(Exception):
    """A command the current state or the rules do not allow; `field` names what is wrong."""

    status = 422
    title = "Not allowed"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """The thing the command is about does not exist (a reaction to remove, a content item)."""

    status = 404
    title = "Not Found"


class Stale(DomainError):
    """The command would take a state back in time (an older counter snapshot)."""

    status = 409
    title = "Conflict"


def require_channel(channel: str, custom: frozenset[str] | None = None) -> str:
    """A built-in channel or one the community added (`custom`: the gateway's list; None, a
    direct call: any custom slug), by the kernel's one check (gatherly.channels)."""
    refusal = unknown_channel(channel, custom)
    if refusal is not None:
        raise DomainError(refusal, field="channel")
    return channel


def fact_channel(given: str | None, item_channel: str, custom: frozenset[str] | None) -> str:
    """A view's, snapshot's or reaction's channel: the one it names, held to the community's
    channels, else its content item's (held to them when the item was published; a channel the
    community drops later must not refuse facts about items already published through it)."""
    return item_channel if given is None else require_channel(given, custom)


def require_counter(counter: str) -> str:
    """Whose counter a snapshot is (a platform: youtube, vk, …): a slug. The KPIs count a
    snapshot by its channel, not by its counter."""
    if not SLUG.match(counter):
        raise DomainError(f"unknown counter {counter!r}", field="counter")
    return counter


def require_reaction_kind(kind: str) -> str:
    """like, love, comment, share, repost, or a community's own kind written as a slug."""
    if kind not in BUILT_IN_REACTIONS and not SLUG.match(kind):
        raise DomainError(f"unknown reaction kind {kind!r}", field="kind")
    return kind


def require_not_future(moment: datetime, now: datetime, *, field: str) -> datetime:
    """Facts are things that happened: an import may date them in the past, never ahead."""
    if in_the_future(moment, now):
        raise DomainError(f"{field} is in the future", field=field)
    return moment


def require_not_before(moment: datetime, start: datetime, *, field: str, what: str) -> datetime:
    if moment < start:
        raise DomainError(f"{field} is before {what}", field=field)
    return moment


# A batch derives each reaction's id twice (to load the states it touches, then to decide it):
# the second time from here (0.1 µs against 1.2 µs for the SHA-1 and its formatting).
@functools.lru_cache(maxsize=8192)
def reaction_id(content_id: str, member_id: str, kind: str) -> str:
    """One stream per (content, member, kind): a member's same reaction is one aggregate."""
    return _uuid5(content_id, f"reaction:{member_id}:{kind}")


def _uuid5(namespace: str, name: str) -> str:
    """`str(uuid.uuid5(UUID(namespace), name))` (RFC 4122 §4.3), without building two UUID
    objects: a batch derives a thousand of these, and the objects were most of the cost."""
    digest = hashlib.sha1(_uuid_bytes(namespace) + name.encode()).hexdigest()
    return (f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-"
            f"{'89ab'[int(digest[16], 16) & 3]}{digest[17:20]}-{digest[20:32]}")


@functools.lru_cache(maxsize=4096)
def _uuid_bytes(value: str) -> bytes:
    return uuid.UUID(value).bytes


def counter_id(content_id: str, counter: str) -> str:
    """One stream per (content, counter): a channel's view counter is one aggregate."""
    return str(uuid.uuid5(uuid.UUID(content_id), f"views_counted:{counter}"))


def reaction_counter_id(content_id: str, counter: str, kind: str) -> str:
    """One stream per (content, counter, kind): a platform's anonymous count of one reaction."""
    return str(uuid.uuid5(uuid.UUID(content_id), f"{counter}:{kind}"))
