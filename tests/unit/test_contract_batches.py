"""A batch's contract check (`validate_all`) gives exactly the verdicts of `validate` event by
event: the same events pass, and a batch that fails names the same first error."""

from __future__ import annotations

from typing import Any

import pytest

from gatherly import contracts
from gatherly.contracts import ContractViolation, validate, validate_all

CONTENT = "6b1c9c8e-3a0e-4a5f-9a59-1f8f2b8e2d11"
MEMBER = "0f8fad5b-d9cb-469f-a165-70867728950e"
AT = "2026-11-22T03:00:00.123456+00:00"
VALID: dict[str, dict[str, Any]] = {
    "gatherly.content.viewed": {"content_id": CONTENT, "channel": "telegram", "count": 1,
                                "viewed_at": AT, "member_id": MEMBER},
    "gatherly.reaction.added": {"content_id": CONTENT, "member_id": MEMBER, "kind": "like",
                                "channel": "vk", "at": AT},
    "gatherly.reaction.removed": {"content_id": CONTENT, "member_id": MEMBER, "kind": "love",
                                  "channel": "vk", "at": "2026-11-22T06:00:00+03:00"},
    "gatherly.member.joined": {"channel": "referral", "invited_by": MEMBER,
                               "external_ref": "h1:ab", "joined_at": "2024-02-29T23:59:60Z"},
}
# Values that pass for another in a set or a comparison (1 == 1.0 == True, 0 == False), every
# JSON type, and ids and moments just inside and just outside the formats.
ODD: list[Any] = [
    None, True, False, 0, 1, 2, 1.0, 1.5, -1, "", "x", "like", "Like", "telegram", [], {}, [1],
    CONTENT.upper(), CONTENT + "\n", "{" + CONTENT + "}", CONTENT.replace("-", ""),
    CONTENT[:-1] + "g", "urn:uuid:" + CONTENT,
    "2026-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
    "2026-11-22T03:00:00.5+00:00", "2026-11-22t03:00:00z", "2026-11-22T24:00:00Z",
    "2026-11-22 03:00:00Z", "2026-11-22T03:00:00+24:00", "2026-11-22T03:00:00+0530",
    "2026-11-22T03:00:00Z\n", "2026-11-22T03:00:00", "2026-11-22T03:00:00+00:00:30",
    "2026-04-31T00:00:00Z", "2026-11-22T03:00:60Z", AT,
]


def _verdict(check: Any, *args: Any) -> str | None:
    try:
        check(*args)
    except ContractViolation as error:
        return str(error)
    return None


def _variants(event_type: str) -> list[Any]:
    """The type's valid data with each field set to each odd value, each field removed, a field
    added; and data that is not an object."""
    valid = VALID[event_type]
    variants: list[Any] = [dict(valid), None, [valid], "data"]
    for name in valid:
        variants += [{**valid, name: odd} for odd in ODD]
        variants.append({k: v for k, v in valid.items() if k != name})
    variants.append({**valid, "email": "a@b.c"})
    return variants


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_a_batch_gets_the_verdict_of_its_events_one_by_one(event_type: str) -> None:
    others = sorted(VALID)
    for variant in _variants(event_type):
        # The variant among valid events of its type (so its column holds other values) and of
        # the other types, as a batch mixes them.
        types = [others[i % len(others)] for i in range(40)]
        datas = [dict(VALID[t]) for t in types]
        types.insert(23, event_type)
        datas.insert(23, variant)
        one_by_one = None
        for t, d in zip(types, datas, strict=True):
            one_by_one = one_by_one or _verdict(validate, t, d)
        assert _verdict(validate_all, types, datas) == one_by_one, variant


def test_the_first_error_is_the_first_events(monkeypatch: pytest.MonkeyPatch) -> None:
    types = ["gatherly.content.viewed"] * 30
    datas = [dict(VALID["gatherly.content.viewed"]) for _ in types]
    datas[7]["count"] = 0
    datas[3]["channel"] = "Telegram"
    assert _verdict(validate_all, types, datas) == _verdict(validate, types[3], datas[3])


def test_a_valid_batch_is_checked_by_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The columns, not the event-by-event fallback, pass the valid batches above: otherwise the
    equal verdicts would prove nothing about them."""
    def refuse(event_type: str, data: dict[str, Any]) -> None:
        raise AssertionError("checked event by event")

    monkeypatch.setattr(contracts, "validate", refuse)
    types = sorted(VALID) * 10
    datas = [dict(VALID[t]) for t in types]
    datas[0].pop("member_id")  # an optional field absent from some events
    validate_all(types, datas)


def test_an_unknown_type_is_refused() -> None:
    types = ["gatherly.content.viewed"] * 20 + ["gatherly.content.unknown"]
    datas = [dict(VALID["gatherly.content.viewed"]) for _ in types]
    with pytest.raises(ContractViolation, match="no published contract"):
        validate_all(types, datas)
