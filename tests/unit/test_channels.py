"""The kernel's one channel check (gatherly.channels), which every service's writes go through."""

from __future__ import annotations

import pytest

from gatherly.channels import custom_channels, known_channel, unknown_channel


def test_the_gateways_header_is_read_as_the_communitys_custom_channels() -> None:
    assert custom_channels(None) is None  # a direct call: not known
    assert custom_channels("") == frozenset()  # the community added none
    assert custom_channels(" alumni-chat,founders ,") == {"alumni-chat", "founders"}


@pytest.mark.parametrize("custom", [None, frozenset(), frozenset({"founders"})])
def test_a_built_in_channel_is_always_known(custom: frozenset[str] | None) -> None:
    assert known_channel("telegram", custom) and unknown_channel("online_event", custom) is None


def test_a_custom_channel_is_known_only_when_the_community_added_it() -> None:
    custom = frozenset({"founders"})
    assert known_channel("founders", custom)
    assert not known_channel("other-club", custom)
    assert not known_channel("founders", frozenset())
    assert known_channel("other-club", None)  # a direct call: any custom slug
    refusal = unknown_channel("other-club", custom)
    assert refusal is not None and "'other-club'" in refusal and "founders" in refusal


@pytest.mark.parametrize("channel", ["", "X", "Telegram", "has space", "a" * 40, "gatherly.>"])
def test_a_channel_that_is_no_slug_is_never_known(channel: str) -> None:
    assert not known_channel(channel) and unknown_channel(channel) is not None
