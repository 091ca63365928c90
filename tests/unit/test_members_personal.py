"""Personal data rules, pure: profile checks, changed-field detection, the reference hash."""

from __future__ import annotations

import re

import pytest

from gatherly.channels import known_channel
from services.members.personal import (
    Profile,
    ProfileError,
    apply_changes,
    profile_changes,
    ref_hash,
    search_key,
)


def check(values: dict[str, object]) -> dict[str, object]:
    return profile_changes(values, known_channel)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"handles": {"Not A Channel": "@ann"}}, "handles"),
        ({"interests": ["ok", "not ok!"]}, "interests"),
        ({"interests": "music"}, "interests"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"phone": "+1"}, "phone"),
    ],
)
def test_a_bad_profile_value_is_refused_naming_the_field(
    values: dict[str, object], field: str
) -> None:
    with pytest.raises(ProfileError) as refused:
        check(values)
    assert refused.value.field == field


def test_profile_values_are_normalised() -> None:
    checked = check({"display_name": "  Ann  ", "interests": ["Music", "music", "ai"],
                     "email": "Ann@Example.org", "handles": {"telegram": " @ann "}})
    assert checked == {"display_name": "Ann", "interests": ("music", "ai"),
                       "email": "Ann@Example.org", "handles": {"telegram": "@ann"}}


def test_only_fields_whose_values_differ_count_as_changed() -> None:
    before = Profile(display_name="Ann", city="Riga", interests=("ai",))
    after, changed = apply_changes(before, check({"display_name": "Ann", "city": "Oslo"}))
    assert changed == ["city"] and after.city == "Oslo" and after.display_name == "Ann"


def test_the_reference_hash_is_keyed_and_scoped_to_community_and_channel() -> None:
    digest = ref_hash("k1", "c1", "telegram", "42")
    assert digest == ref_hash("k1", "c1", "telegram", "42")
    assert re.fullmatch(r"h1:[0-9a-f]{64}", digest)
    assert len({digest, ref_hash("k2", "c1", "telegram", "42"),
                ref_hash("k1", "c2", "telegram", "42"), ref_hash("k1", "c1", "vk", "42")}) == 4


@pytest.mark.parametrize(("value", "key"), [
    ("Мария", "мария"), ("Ёлка", "ёлка"), ("Ünïcødé", "ünïcødé"), ("Straße", "strasse"),
    ("U\u0308ber", "über"), ("\uff21\uff2e\uff2e", "ann"), ("ﬁona", "fiona"), ("ΣΟΦΙΑ", "σοφια"),
    ("ann@Example.ORG", "ann@example.org"), (None, None),
])
def test_a_search_key_folds_case_in_any_script(value: str | None, key: str | None) -> None:
    assert search_key(value) == key


def test_the_key_of_a_prefix_starts_the_key_of_the_whole() -> None:
    for whole in ("Мария Иванова", "Ünïcødé Straße", "ΣΟΦΙΑ", "İstanbul"):
        for cut in range(1, len(whole) + 1):
            assert (search_key(whole) or "").startswith(search_key(whole[:cut]) or ""), whole
