"""A window's UTC offsets (queries/window.py: utc_offsets), which the day bucket of a counter
snapshot reads instead of converting every row in Postgres: at every instant of the window the
offset they give is the zone's own, right up to the second of each change."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from services.kpi.queries.window import Window, bucket, utc_offsets

WINDOWS = [
    ("Europe/Berlin", date(2025, 1, 1), date(2025, 12, 31)),
    ("Pacific/Chatham", date(2021, 2, 3), date(2025, 11, 9)),  # +12:45 / +13:45
    ("America/St_Johns", date(2024, 3, 9), date(2024, 3, 11)),  # the change inside the window
    ("Asia/Kolkata", date(2025, 1, 1), date(2025, 12, 31)),  # no change at all
    ("Australia/Lord_Howe", date(2024, 1, 1), date(2025, 12, 31)),  # half-hour changes
]


def offset_at(spans: tuple[tuple[int, int], ...], at: int) -> int:
    return [offset for start, offset in spans if start <= at][-1]


@pytest.mark.parametrize(("tz", "first", "last"), WINDOWS)
def test_the_offsets_are_the_zones_at_every_instant_of_the_window(
    tz: str, first: date, last: date
) -> None:
    spans, zone, rng = utc_offsets(tz, first, last), ZoneInfo(tz), random.Random(tz)
    w = Window(first, last, "day", tz)
    start, end = int(w.start.timestamp()), int(w.end.timestamp())
    instants = [rng.randrange(start, end) for _ in range(2000)]
    for change, _ in spans[1:]:
        instants += [change - 1, change, change + 1]
    instants += [start, end - 1]
    for at in instants:
        expected = datetime.fromtimestamp(at, zone).utcoffset()
        assert expected is not None
        assert offset_at(spans, at) == int(expected.total_seconds()), (tz, at)
    assert spans[0][0] == start and all(a[0] < b[0] for a, b in pairwise(spans))


def test_a_zone_that_changes_has_its_changes_and_one_that_does_not_has_none() -> None:
    assert len(utc_offsets("Europe/Berlin", date(2025, 1, 1), date(2025, 12, 31))) == 3
    assert len(utc_offsets("Asia/Kolkata", date(2025, 1, 1), date(2025, 12, 31))) == 1
    berlin = Window(date(2025, 1, 1), date(2025, 12, 31), "day", "Europe/Berlin")
    spring = datetime(2025, 3, 30, 1, tzinfo=UTC)
    assert f"timestamptz '{spring.isoformat()}'" in bucket("as_of", berlin)
    assert "date_trunc" in bucket("as_of", Window(berlin.first, berlin.last, "week", berlin.tz))
