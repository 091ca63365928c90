"""HTTP routes for community events: translate requests into commands and state into responses."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.envelope import DomainEvent, utc_now
from gatherly.web import (
    Community,
    CommunityPath,
    CustomChannels,
    Problem,
    cursor_position,
    decode_cursor,
    encode_cursor,
    parse_if_match,
)
from services.events import domain, listings
from services.events.handlers import CheckIn, EventHandlers, Outcome, ScheduleEvent, Target
from services.events.schemas import (
    CheckInCreate,
    EventCancel,
    EventDetail,
    EventFinish,
    EventPage,
    EventReschedule,
    EventSchedule,
    RegistrationCreate,
    SeatKind,
    SeatPage,
    SeatPublic,
    Transition,
    event_public,
    followup_public,
    seat_public,
)
from services.events.state import CommunityEvent, Format
from services.events.views import Details

router = APIRouter(prefix="/v1/communities/{community_id}/events", tags=["events"])


def handlers(request: Request) -> EventHandlers:
    found: EventHandlers = request.app.state.handlers
    return found


def engine(request: Request) -> AsyncEngine:
    found: AsyncEngine = request.app.state.engine
    return found


Handlers = Annotated[EventHandlers, Depends(handlers)]
Engine = Annotated[AsyncEngine, Depends(engine)]
IfMatch = Annotated[str | None, Header()]


def target(community: str, event_id: uuid.UUID, if_match: str | None = None) -> Target:
    return Target(community, str(event_id), parse_if_match(if_match))


async def detail(db: AsyncEngine, community: str, event_id: str, response: Response) -> EventDetail:
    async with db.connect() as conn:
        row = await listings.event(conn, community, event_id)
        if row is None:
            raise Problem(404, "Not Found", f"no event {event_id}")
        duties = await listings.followups_of(conn, event_id)
    now = utc_now()
    base = f"/v1/communities/{community}/events/{event_id}"
    response.headers["ETag"] = f'"{row.version}"'
    return EventDetail(
        **event_public(row).model_dump(),
        followups=[followup_public(d, now) for d in duties],
        links={kind: f"{base}/{kind}" for kind in ("registrations", "waitlist", "attendees")},
    )


async def seat_of(db: AsyncEngine, outcome: Outcome, response: Response) -> SeatPublic:
    async with db.connect() as conn:
        rows = await listings.seat(conn, outcome.event.id, outcome.member_id or "")
    if rows is None:
        raise Problem(404, "Not Found", f"member {outcome.member_id} has no seat at this event")
    response.headers["ETag"] = f'"{outcome.event.version}"'
    return seat_public(rows)


@router.post("", status_code=201, response_model=EventDetail)
async def schedule_event(
    community_id: CommunityPath, body: EventSchedule, response: Response, community: Community,
    events: Handlers, db: Engine, channels: CustomChannels,
) -> EventDetail:
    outcome = await events.schedule(ScheduleEvent(
        community_id=community,
        details=Details(title=body.title, time_zone=body.time_zone, description=body.description,
                        place=body.place, link=body.link),
        format=Format(body.format), starts_at=body.starts_at, ends_at=body.ends_at,
        channel=body.channel, capacity=body.capacity, custom_channels=channels,
    ))
    response.headers["Location"] = f"/v1/communities/{community}/events/{outcome.event.id}"
    return await detail(db, community, outcome.event.id, response)


@router.post("/{event_id}/reschedule", response_model=EventDetail)
async def reschedule_event(
    community_id: CommunityPath, event_id: uuid.UUID, body: EventReschedule, response: Response,
    community: Community, events: Handlers, db: Engine, if_match: IfMatch = None,
) -> EventDetail:
    await events.reschedule(target(community, event_id, if_match), starts_at=body.starts_at,
                            ends_at=body.ends_at, time_zone=body.time_zone, at=utc_now())
    return await detail(db, community, str(event_id), response)


def _transition_route(
    path: str, decision: Callable[[CommunityEvent, datetime], list[DomainEvent]], summary: str
) -> None:
    """Routes whose body is only an optional moment: open/close registration."""

    @router.post(path, response_model=EventDetail, summary=summary)
    async def transition(
        community_id: CommunityPath, event_id: uuid.UUID, response: Response,
        community: Community, events: Handlers, db: Engine, body: Transition | None = None,
        if_match: IfMatch = None,
    ) -> EventDetail:
        at = (body.at if body else None) or utc_now()
        await events.decide(target(community, event_id, if_match), lambda e: decision(e, at))
        return await detail(db, community, str(event_id), response)


_transition_route("/{event_id}/open-registration",
                  lambda e, at: domain.open_registration(e, at=at), "Open registration")
_transition_route("/{event_id}/close-registration",
                  lambda e, at: domain.close_registration(e, at=at), "Close registration")


@router.post("/{event_id}/cancel", response_model=EventDetail)
async def cancel_event(
    community_id: CommunityPath, event_id: uuid.UUID, response: Response, community: Community,
    events: Handlers, db: Engine, body: EventCancel | None = None, if_match: IfMatch = None,
) -> EventDetail:
    body = body or EventCancel()
    at = body.cancelled_at or utc_now()
    await events.decide(target(community, event_id, if_match),
                        lambda e: domain.cancel(e, at=at, reason=body.reason))
    return await detail(db, community, str(event_id), response)


@router.post("/{event_id}/finish", response_model=EventDetail)
async def finish_event(
    community_id: CommunityPath, event_id: uuid.UUID, response: Response, community: Community,
    events: Handlers, db: Engine, body: EventFinish | None = None, if_match: IfMatch = None,
) -> EventDetail:
    at = (body.finished_at if body else None) or utc_now()
    await events.finish(target(community, event_id, if_match), at=at)
    return await detail(db, community, str(event_id), response)


@router.post("/{event_id}/registrations", status_code=201, response_model=SeatPublic)
async def register_member(
    community_id: CommunityPath, event_id: uuid.UUID, body: RegistrationCreate,
    response: Response, community: Community, events: Handlers, db: Engine,
    channels: CustomChannels,
) -> SeatPublic:
    outcome = await events.register(target(community, event_id), member_id=str(body.member_id),
                                    channel=body.channel, at=body.registered_at or utc_now(),
                                    custom_channels=channels)
    response.headers["Location"] = (
        f"/v1/communities/{community}/events/{event_id}/registrations/{body.member_id}"
    )
    return await seat_of(db, outcome, response)


@router.post("/{event_id}/registrations/{member_id}/cancel", response_model=SeatPublic)
async def cancel_registration(
    community_id: CommunityPath, event_id: uuid.UUID, member_id: uuid.UUID, response: Response,
    community: Community, events: Handlers, db: Engine, body: Transition | None = None,
) -> SeatPublic:
    at = (body.at if body else None) or utc_now()
    outcome = await events.cancel_registration(target(community, event_id),
                                               member_id=str(member_id), at=at)
    return await seat_of(db, outcome, response)


@router.post("/{event_id}/check-ins", status_code=201, response_model=SeatPublic,
             responses={200: {"description": "the member was already checked in; nothing new"}})
async def check_in(
    community_id: CommunityPath, event_id: uuid.UUID, body: CheckInCreate, response: Response,
    community: Community, events: Handlers, db: Engine, channels: CustomChannels,
) -> SeatPublic:
    outcome = await events.check_in(target(community, event_id), CheckIn(
        at=body.checked_in_at or utc_now(), member_id=str(body.member_id) if body.member_id
        else None, code=body.code, walk_in=body.walk_in, channel=body.channel,
        custom_channels=channels,
    ))
    if not outcome.envelopes:
        response.status_code = 200
    return await seat_of(db, outcome, response)


@router.get("/{event_id}", response_model=EventDetail)
async def show_event(
    community_id: CommunityPath, event_id: uuid.UUID, response: Response, community: Community,
    db: Engine,
) -> EventDetail:
    return await detail(db, community, str(event_id), response)


@router.get("/{event_id}/registrations/{member_id}", response_model=SeatPublic)
async def show_registration(
    community_id: CommunityPath, event_id: uuid.UUID, member_id: uuid.UUID, community: Community,
    db: Engine,
) -> SeatPublic:
    async with db.connect() as conn:
        row = await listings.seat(conn, str(event_id), str(member_id))
        exists = row is not None or await listings.event(conn, community, str(event_id))
    if row is None or not exists:
        raise Problem(404, "Not Found", f"member {member_id} has no seat at event {event_id}")
    return seat_public(row)


@router.get("/{event_id}/{kind}", response_model=SeatPage)
async def list_seats(
    community_id: CommunityPath, event_id: uuid.UUID, kind: SeatKind, community: Community,
    db: Engine, limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
) -> SeatPage:
    after = cursor_position(cursor)
    async with db.connect() as conn:
        if await listings.event(conn, community, str(event_id)) is None:
            raise Problem(404, "Not Found", f"no event {event_id}")
        rows, next_after = await listings.seats(
            conn, str(event_id), listings.SeatList(kind), after=after, limit=limit)
    return SeatPage(items=[seat_public(r) for r in rows],
                    next_cursor=encode_cursor({"after": next_after}) if next_after else None)


@router.get("", response_model=EventPage)
async def list_events(
    community_id: CommunityPath, community: Community, db: Engine,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
    when: listings.When | None = None, format: Format | None = None,
    channel: Annotated[str | None, Query(min_length=2, max_length=32)] = None,
) -> EventPage:
    after = None
    if cursor:
        position = decode_cursor(cursor)
        try:
            after = (datetime.fromisoformat(position["s"]), str(uuid.UUID(position["id"])))
        except (KeyError, TypeError, ValueError) as error:
            raise Problem(400, "Bad cursor", "the cursor is not one this API issued") from error
    async with db.connect() as conn:
        rows, last = await listings.events(conn, community, when=when, limit=limit, after=after,
                                           format=format.value if format else None,
                                           channel=channel)
    return EventPage(
        items=[event_public(r) for r in rows],
        next_cursor=encode_cursor({"s": last[0].isoformat(), "id": last[1]}) if last else None,
    )
