"""A list cursor's position: only what `encode_cursor` issued reads back; anything else of the
same shape is a 400 problem, never a query that fails."""

from __future__ import annotations

import base64
import json

import pytest

from gatherly.web import Problem, cursor_position, encode_cursor


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": value}).encode()).decode().rstrip("=")


def test_an_issued_cursor_reads_back_its_position() -> None:
    assert cursor_position(encode_cursor({"after": 2**63 - 1})) == 2**63 - 1
    assert cursor_position(encode_cursor({"before": 7}), "before") == 7
    assert cursor_position(None) == 0


@pytest.mark.parametrize("value", [2**63, -1, "12", None, 1.5, True, [1]])
def test_a_cursor_around_any_other_value_is_a_400(value: object) -> None:
    with pytest.raises(Problem) as refused:
        cursor_position(_cursor(value))
    assert refused.value.status == 400
