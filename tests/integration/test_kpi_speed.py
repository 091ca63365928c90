"""The median over every reaction is read from 1 % geometric delay bins (queries/speed.py): the
bins' quantile is within 0.5 % of `percentile_cont` over the exact delays (pure, no database)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from services.kpi.facts.speed import BIN_BASE, BIN_OFFSET
from services.kpi.queries.speed import quantile, representative


def bin_of(seconds: float) -> int:
    """The projection's SQL bin, written again in Python."""
    if seconds == 0:
        return 0
    return int(math.copysign(math.floor(math.log(abs(seconds), BIN_BASE)) + BIN_OFFSET, seconds))


def percentile_cont(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def binned(values: list[float]) -> list[tuple[int, int]]:
    return sorted(Counter(bin_of(v) for v in values).items())


@pytest.mark.parametrize("seed", range(20))
def test_the_binned_quantile_is_within_half_a_percent(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(8, 2.5) for _ in range(rng.randint(1, 3000))]
    for p in (0.5, 0.9, 0.0, 1.0):
        assert quantile(binned(values), p) == pytest.approx(percentile_cont(values, p),
                                                            rel=0.005)


def test_every_delay_is_within_half_a_percent_of_its_bin() -> None:
    for seconds in (1e-6, 0.37, 1.0, 59.9, 3600.0, 86400 * 365.0, -42.0):
        assert representative(bin_of(seconds)) == pytest.approx(seconds, rel=0.005)
    assert representative(bin_of(0.0)) == 0.0


def test_no_reactions_have_no_median() -> None:
    assert quantile([], 0.5) is None
