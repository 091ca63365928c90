"""Channels (DESIGN §1): where a fact happened or where someone came from. A channel is a built-in
one or a custom slug the community added. Pure: the one check every service's writes go through.

The community's custom channels belong to the community, which the gateway's edge app owns; its
forwardAuth hands them to the services on every request as `X-Gatherly-Community-Channels`
(comma-separated slugs, empty when the community added none). A request without that header
(a direct call that bypassed the gateway: tests, local tools, partner deliveries posted over
loopback) does not know them: then any lowercase slug of 2-32 characters passes as a custom
channel, the behaviour before the gateway knew a community's channels.
"""

from __future__ import annotations

import re

BUILT_IN_CHANNELS = frozenset(
    {"telegram", "vk", "facebook", "email", "youtube", "website", "offline", "online_event",
     "referral"}
)
CHANNEL_SLUG = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
HEADER = "x-gatherly-community-channels"


def custom_channels(header: str | None) -> frozenset[str] | None:
    """The community's custom channels from the gateway's header; None when it is absent."""
    if header is None:
        return None
    return frozenset(s.strip() for s in header.split(",") if s.strip())


def known_channel(channel: str, custom: frozenset[str] | None = None) -> bool:
    """A built-in channel, or one the community added (`custom`; None: any custom slug)."""
    if channel in BUILT_IN_CHANNELS:
        return True
    if custom is None:
        return bool(CHANNEL_SLUG.match(channel))
    return channel in custom


def unknown_channel(channel: str, custom: frozenset[str] | None = None) -> str | None:
    """Why `channel` is refused (the problem's detail, naming the community's channels when
    they are known), or None when it is one of the community's. Each service raises its own
    refusal with this text, naming the request's field."""
    if known_channel(channel, custom):
        return None
    if custom is None:
        return f"unknown channel {channel!r}"
    known = ", ".join(sorted(BUILT_IN_CHANNELS | custom))
    return f"unknown channel {channel!r}; the community's channels are {known}"
