"""The engagement service's consumer of `gatherly.member.erased` (`gatherly project
engagement-erasure`): run by the kernel's projection runner, which applies each batch exactly
once in the same transaction as its bookkeeping, in this service's schema. Every other fact is
passed over; the runner still settles it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.envelope import Envelope
from services.engagement import erasure, erasure_store

SCHEMA = "engagement"


class ErasureProjection:
    name = "engagement-erasure"
    schema = SCHEMA
    # A view is its own stream of one event: no version row for each (the bulk of the stream),
    # as the KPI projection does. Passing a fact over is idempotent anyway.
    single_event_types = frozenset({"gatherly.content.viewed"})
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
