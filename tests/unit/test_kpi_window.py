"""A KPI window's period starts: local dates, each granularity's first day, made once per window
(queries/window.py keeps them) but handed out as a list each caller owns."""

from __future__ import annotations

from datetime import date

from services.kpi.queries.window import Window


def test_the_period_starts_of_each_granularity() -> None:
    first, last = date(2025, 1, 30), date(2025, 3, 3)
    assert Window(first, last, "day", "UTC").buckets()[:3] == [
        date(2025, 1, 30), date(2025, 1, 31), date(2025, 2, 1)]
    assert len(Window(first, last, "day", "UTC").buckets()) == 33
    assert Window(first, last, "week", "UTC").buckets() == [  # Mondays
        date(2025, 1, 27), date(2025, 2, 3), date(2025, 2, 10), date(2025, 2, 17),
        date(2025, 2, 24), date(2025, 3, 3)]
    assert Window(first, last, "month", "UTC").buckets() == [
        date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]


def test_a_caller_that_changes_its_starts_changes_nobody_elses() -> None:
    w = Window(date(2025, 1, 1), date(2025, 12, 31), "day", "Europe/Berlin")
    mine = w.buckets()
    mine.clear()
    assert len(w.buckets()) == 365
    assert len(Window(w.first, w.last, "day", "UTC").buckets()) == 365
