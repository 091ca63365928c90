"""What every request may say of a moment and a count (gatherly.web.Moment, Count)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from gatherly.web import MAX_COUNT, Count, Moment

MOMENT: TypeAdapter[object] = TypeAdapter(Moment)
COUNT: TypeAdapter[object] = TypeAdapter(Count)


@pytest.mark.parametrize("text", ["1900-01-01T00:00:00+14:00", "2999-12-31T23:59:59-12:00",
                                  "2026-11-22T07:00:00Z"])
def test_a_moment_any_store_can_hold_is_taken(text: str) -> None:
    assert MOMENT.validate_python(text).isoformat()[:4] == text[:4]


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:30:00-05:00",
                                  "1899-12-31T23:59:59Z", "3000-01-01T00:00:00Z",
                                  "2026-11-22T07:00:00"])
def test_a_moment_outside_the_years_or_without_an_offset_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        MOMENT.validate_python(text)


def test_a_count_is_between_zero_and_a_trillion() -> None:
    assert COUNT.validate_python(MAX_COUNT) == MAX_COUNT
    for wrong in (-1, MAX_COUNT + 1, 2**63 - 1):
        with pytest.raises(ValidationError):
            COUNT.validate_python(wrong)
