"""A batch a projection cannot apply because of one fact's data is split until that fact is
alone, and the fact is then settled as poison (terminated, logged, counted) while every other
fact is applied. The data is at fault when Postgres refuses it as a "data exception" (SQLSTATE
class 22: a value out of range, a division by zero, a bad date): the same batch fails the same
way on every retry, and without this the projection stopped for every community for good. Any
other error (a lost connection, a lock timeout) is the moment's, and goes up to be retried."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gatherly.bus import Delivery
from gatherly.settlement import BatchOutcome, Received

log = logging.getLogger(__name__)

Apply = Callable[[Received], Awaitable[BatchOutcome]]


def refused_data(error: BaseException) -> bool:
    """Whether Postgres refused the data itself (asyncpg's error, or SQLAlchemy's around it)."""
    orig = getattr(error, "orig", None)
    for cause in (error, error.__cause__, orig, getattr(orig, "__cause__", None)):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(code, str) and code.startswith("22"):
            return True
    return False


async def apply_isolating(apply: Apply, batch: Received, projection: str) -> list[BatchOutcome]:
    """`apply(batch)`, or, when the batch's data is refused, its halves' (in stream order, so
    each aggregate's versions keep their order), down to the one fact that is poison."""
    try:
        return [await apply(batch)]
    except Exception as error:
        if not refused_data(error):
            raise
        if len(batch.deliveries) == 1:
            (delivery,) = batch.deliveries
            log.error("projection %s: poison message %d, its data refused: %s", projection,
                      delivery.stream_sequence, error)
            return [await apply(Received(deliveries=[delivery], poison=[delivery]))]
        half = len(batch.deliveries) // 2
        outcomes: list[BatchOutcome] = []
        for part in (batch.deliveries[:half], batch.deliveries[half:]):
            outcomes += await apply_isolating(apply, _part(batch, part), projection)
        return outcomes


def _part(batch: Received, deliveries: list[Delivery]) -> Received:
    sequences = {d.stream_sequence for d in deliveries}
    return Received(
        deliveries=deliveries,
        envelopes={s: e for s, e in batch.envelopes.items() if s in sequences},
        poison=[d for d in batch.poison if d.stream_sequence in sequences],
    )
