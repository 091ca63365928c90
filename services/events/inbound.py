"""Events' share of an inbound delivery (internal: the inbound service posts it over loopback).

`POST /internal/inbound/{source}` takes the delivery's registrations and check-ins and records
them in one transaction with the part's receipt (gatherly/inbound.py): a replay records nothing
and answers as the first time did; a refused command leaves nothing of the part written. A
platform reports what is so: a registration of a member already registered records nothing.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import utc_now
from gatherly.inbound import InboundReceipts, OneTransaction, Receipt
from gatherly.web import Moment
from services.events.handlers import CheckIn, EventHandlers, Outcome, Target
from services.events.state import DomainError

PART = "events"
router = APIRouter(include_in_schema=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Register(Strict):
    op: Literal["register"]
    event_id: uuid.UUID
    member_id: uuid.UUID
    channel: str = Field(min_length=2, max_length=32)
    at: Moment | None = None


class CheckInMember(Strict):
    op: Literal["check_in"]
    event_id: uuid.UUID
    member_id: uuid.UUID
    walk_in: bool = False
    channel: str | None = Field(default=None, min_length=2, max_length=32)
    at: Moment | None = None


Command = Annotated[Register | CheckInMember, Field(discriminator="op")]


class Part(Strict):
    community_id: str = Field(min_length=1, max_length=100)
    webhook_id: str = Field(min_length=1, max_length=255)
    commands: list[Command] = Field(min_length=1, max_length=1000)


@router.post("/internal/inbound/{source}")
async def record_part(source: str, part: Part, request: Request) -> dict[str, Any]:
    shared: EventHandlers = request.app.state.handlers
    receipts: InboundReceipts = request.app.state.inbound_receipts

    async def record(conn: AsyncConnection) -> dict[str, Any]:
        handlers = EventHandlers(
            cast(AsyncEngine, OneTransaction(conn)), shared.store, shared.followup_due_days
        )
        results = [await _record(handlers, part.community_id, c) for c in part.commands]
        return {"results": results, "recorded": sum(1 for r in results if r["recorded"])}

    receipt = Receipt(part.community_id, source, part.webhook_id, PART)
    return await receipts.record_once(shared.engine, receipt, record)


async def _record(
    handlers: EventHandlers, community_id: str, command: Register | CheckInMember
) -> dict[str, Any]:
    target = Target(community_id, str(command.event_id))
    member_id = str(command.member_id)
    at = command.at or utc_now()
    outcome: Outcome
    if isinstance(command, Register):
        try:
            outcome = await handlers.register(target, member_id=member_id,
                                              channel=command.channel, at=at)
        except DomainError as error:
            # Decided before anything was written, so the transaction goes on unharmed.
            if error.rule != "already_registered":
                raise
            return {"op": command.op, "event_id": target.event_id, "recorded": False}
    else:
        outcome = await handlers.check_in(target, CheckIn(
            at=at, member_id=member_id, walk_in=command.walk_in, channel=command.channel,
        ))
    return {"op": command.op, "event_id": target.event_id, "recorded": bool(outcome.envelopes)}
