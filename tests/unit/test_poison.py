"""Which errors mean a batch's data is at fault (gatherly.poison.refused_data)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

from gatherly.poison import refused_data


def test_a_data_exception_is_the_datas_fault_wrapped_or_not() -> None:
    out_of_range = asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range")
    assert refused_data(out_of_range)
    assert refused_data(asyncpg.exceptions.DivisionByZeroError("division by zero"))
    adapted = Exception("the driver adapter's error")  # as SQLAlchemy's asyncpg dialect raises
    adapted.__cause__ = out_of_range
    assert refused_data(DBAPIError("INSERT …", {}, adapted))


def test_any_other_error_is_the_moments() -> None:
    assert not refused_data(asyncpg.exceptions.SerializationError("could not serialize"))
    assert not refused_data(asyncpg.exceptions.LockNotAvailableError("lock timeout"))
    assert not refused_data(OSError("connection reset"))
    assert not refused_data(DBAPIError("SELECT 1", {}, OSError("gone")))
