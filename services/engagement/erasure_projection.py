"""The engagement service's consumer of `gatherly.member.erased` (`gatherly project
engagement-erasure`): run by the kernel's projection runner, which applies each batch exactly
once in the same transaction as its bookkeeping, in this service's schema. Its consumer is
filtered to erasures: NATS sends it no other fact."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.engagement import erasure, erasure_store
from services.engagement.erasure import ERASED

SCHEMA = "engagement"


class ErasureProjection:
    name = "engagement-erasure"
    schema = SCHEMA
    # Its consumer gets erasures alone, each applied as it comes (forgetting is idempotent).
    fact_types = frozenset({ERASED})
    single_event_types: frozenset[str] = frozenset()
    # A commit lost in a crash loses its checkpoint with it: the stream brings the erasure
    # again and forgetting is idempotent. A later write that saw the erasure committed after
    # it in the WAL, so it cannot outlive it.
    durable_commits = False

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        await erasure_store.forget(conn, erasure.erasures(events))

    async def reset(self, conn: AsyncConnection) -> None:
        """Nothing to empty: the erased words are gone for good, and the record of erasures
        stays, so a write during the rebuild still finds them. The replay applies each again,
        which changes nothing."""


def build_projection() -> ErasureProjection:
    return ErasureProjection()
