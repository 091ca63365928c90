"""The window a KPI question is about: dates in the community's time zone, a granularity, and the
period starts (buckets) the answer is split into. Pure; the SQL bucket expression matches
`bucket_of` exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

Granularity = Literal["day", "week", "month"]
MAX_DAY_RANGE = 5 * 366
MAX_RANGE = 20 * 366
# Facts happen in our era (imports reach into the past, never centuries back); the bounds also
# keep every date arithmetic and every timestamptz of a window far from their limits.
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
ONE_DAY, ONE_WEEK = timedelta(days=1), timedelta(days=7)

# date_trunc in the community's zone: `at AT TIME ZONE tz` is the local wall-clock time.
BUCKET_SQL = "CAST(date_trunc(:g, {column} AT TIME ZONE :tz) AS date)"


class BadWindow(ValueError):
    """A window the API refuses (the message says which rule)."""


@dataclass(frozen=True, slots=True)
class Window:
    first: date
    last: date
    granularity: Granularity
    tz: str

    def __post_init__(self) -> None:
        if not (self.first >= EARLIEST and self.last <= LATEST):
            raise BadWindow(f"dates lie between {EARLIEST} and {LATEST}")
        if self.first > self.last:
            raise BadWindow("`from` is after `to`")
        days = (self.last - self.first).days + 1
        if self.granularity == "day" and days > MAX_DAY_RANGE:
            raise BadWindow("at day granularity a range spans at most 5 years")
        if days > MAX_RANGE:
            raise BadWindow("a range spans at most 20 years")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> datetime:
        """The first instant of `first` in the community's zone."""
        return datetime.combine(self.first, time(), self.zone)

    @property
    def end(self) -> datetime:
        """The instant just after `last` ends in the community's zone (exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)

    def bucket_of(self, moment: datetime) -> date:
        return truncate(moment.astimezone(self.zone).date(), self.granularity)

    def buckets(self) -> list[date]:
        """The period starts (a list of its own: a caller may change it)."""
        return list(_starts(self.first, self.last, self.granularity))

    def cuts(self, start: date) -> bool:
        """Whether the window starts or ends inside the period that starts at `start`: its
        numbers are then those of the window's part of it."""
        return start < self.first or advance(start, self.granularity) - ONE_DAY > self.last

    def params(self) -> dict[str, object]:
        """Also the months a monthly rollup is read for: [m1, m2) the window holds whole, and
        m0, the month `first` falls in (what is before it opens the window)."""
        m1, m2 = whole_months(self.first, self.last)
        return {"g": self.granularity, "tz": self.tz, "start": self.start, "end": self.end,
                "first": self.first, "last": self.last,
                "m0": truncate(self.first, "month"), "m1": m1, "m2": m2}


@lru_cache(maxsize=64)
def _starts(first: date, last: date, granularity: Granularity) -> tuple[date, ...]:
    """Made once per window (the same year of days is asked again and again; making it took
    ~0.2 ms of a question's CPU)."""
    starts, current = [], truncate(first, granularity)
    while current <= last:
        starts.append(current)
        current = advance(current, granularity)
    return tuple(starts)


def days_ending(last: date, days: int) -> date:
    """The first of `days` days ending at `last`, never before `date.min`."""
    return last - timedelta(days=days - 1) if last - date.min >= timedelta(days=days) else date.min


def truncate(day: date, granularity: Granularity) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def advance(day: date, granularity: Granularity) -> date:
    if granularity == "day":
        return day + ONE_DAY
    if granularity == "week":
        return day + ONE_WEEK
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def whole_months(first: date, last: date) -> tuple[date, date]:
    """[m1, m2): the months `first`..`last` (inclusive) holds whole; m1 == m2 when none. A
    distinct count or a quantile reads these from monthly rows and the rest from daily ones."""
    m1 = first if first.day == 1 else advance(truncate(first, "month"), "month")
    m2 = truncate(last + timedelta(days=1), "month")
    return (m1, m2) if m1 < m2 else (last, last)


def bucket(column: str) -> str:
    return BUCKET_SQL.format(column=column)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
