"""KPI query routes: one per KPI family, every one over a window (`from`, `to`, `granularity`,
`tz`). The community's time zone and feedback SLA come from the gateway's headers (the edge app
owns communities); `tz` and `sla_hours` override them, and without either the defaults are UTC
and 24 h (docs/kpi.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.envelope import utc_now
from gatherly.web import Community, CommunityPath, Problem
from services.kpi.facts.rollups import MAX_ZONES, TooManyZones
from services.kpi.live import kpi_events
from services.kpi.queries.beyond import active_kpi, followups_kpi, retention_kpi, roles_kpi
from services.kpi.queries.channels import channels_kpi
from services.kpi.queries.content import reactions_kpi, views_kpi
from services.kpi.queries.events import event_stats, events_kpi
from services.kpi.queries.feedback import feedback_kpi
from services.kpi.queries.members import members_kpi
from services.kpi.queries.window import BadWindow, Granularity, Window, days_ending
from services.kpi.queries.zones import NewZone, ensure_zone

ID = r"^[A-Za-z0-9_-]{1,64}$"

router = APIRouter(prefix="/v1/communities/{community_id}/kpis", tags=["kpis"])

DEFAULT_SLA_HOURS = 24.0


async def sla(
    sla_hours: Annotated[
        float | None,
        Query(gt=0, le=24 * 365, description="feedback SLA, hours (default: the community's)"),
    ] = None,
    x_gatherly_community_feedback_sla_hours: Annotated[
        str | None, Header(include_in_schema=False)
    ] = None,
) -> float:
    """The SLA asked for, else the community's (set by the gateway), else 24 h. `async`, though
    it awaits nothing, as `window`: FastAPI runs a plain `def` dependency in a worker thread."""
    if sla_hours is not None:
        return sla_hours
    try:
        community_sla = float(x_gatherly_community_feedback_sla_hours or DEFAULT_SLA_HOURS)
    except ValueError:
        community_sla = DEFAULT_SLA_HOURS
    return community_sla if 0 < community_sla <= 24 * 365 else DEFAULT_SLA_HOURS


SlaHours = Annotated[float, Depends(sla)]


def zone_name(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise Problem(400, "Unknown time zone", f"`tz` {tz!r} is not an IANA zone") from error
    return tz


async def window(
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    granularity: Granularity = "day",
    tz: Annotated[
        str | None, Query(max_length=64, description="IANA zone (default: the community's)")
    ] = None,
    x_gatherly_community_time_zone: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Window:
    """The window asked for; by default the last 30 days, in the zone asked for, else the
    community's (set by the gateway), else UTC. `async`, though it awaits nothing: FastAPI runs
    a plain `def` dependency in a worker thread, a hop (and a wake-up of the event loop) per
    question per dependency."""
    zone = zone_name(tz or x_gatherly_community_time_zone or "UTC")
    last = to or utc_now().astimezone(ZoneInfo(zone)).date()
    try:
        return Window(from_ or days_ending(last, 30), last, granularity, zone)
    except BadWindow as error:
        raise Problem(400, "Bad range", str(error)) from error


async def zoned(
    request: Request, community: Community, w: Annotated[Window, Depends(window)]
) -> Window:
    """The window, once the community's rollups exist in its zone."""
    await registered(request.app.state.engine, community, w.tz)
    return w


async def registered(engine: AsyncEngine, community: str, tz: str) -> None:
    """`ensure_zone`, the zone limit answered as a problem."""
    try:
        await ensure_zone(engine, community, tz)
    except TooManyZones as error:
        raise too_many_zones(error) from error


async def zone_checked(request: Request, community: str, w: Window, question: Question) -> Any:
    """`question`'s answer, the question checking its zone in its own statement (zones.ZONED):
    on the zone's first question, NewZone; the zone is then registered (its rollups filled) and
    the question asked again."""
    engine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            return await question(conn, community, w)
    except NewZone:
        await registered(engine, community, w.tz)
    async with engine.connect() as conn:
        return await question(conn, community, w)


def too_many_zones(error: TooManyZones) -> Problem:
    return Problem(400, "Too many time zones", f"this community's KPIs are kept in at most"
                   f" {MAX_ZONES} zones; ask in one of {error.args[0]}")


Span = Annotated[Window, Depends(zoned)]
Asked = Annotated[Window, Depends(window)]  # a question that registers its zone itself
Question = Callable[[AsyncConnection, str, Window], Awaitable[Any]]


def frame(community: str, w: Window, body: dict[str, Any]) -> dict[str, Any]:
    """The answer with its window; each period says whether the window cuts it (`partial`): a
    window of two days in October answers one month labelled October 1st, with two days in it."""
    periods = body.get("periods") or []
    for period in periods:
        period["partial"] = False
    for period in periods[:1] + periods[-1:]:
        period["partial"] = w.cuts(date.fromisoformat(period["start"]))
    return {"community_id": community, "from": w.first.isoformat(), "to": w.last.isoformat(),
            "granularity": w.granularity, "tz": w.tz, **body}


def framed(community: str, w: Window, body: dict[str, Any]) -> Response:
    return answer(frame(community, w, body))


def answer(body: dict[str, Any]) -> Response:
    """Serialised as it is, by pydantic-core: the answers hold only JSON values, FastAPI's generic
    encoder took a third of the 20 ms budget on a year of days, and the standard library's
    `json.dumps` still took 1.5 ms on the events answer's 137 kB (0.4 ms here). A rate with no
    base is already None; a NaN that slipped through would be sent as null, never as invalid
    JSON."""
    return Response(to_json(body, inf_nan_mode="null"), media_type="application/json")


@router.get("/members", response_model=dict[str, Any])
async def members(
    community_id: CommunityPath, request: Request, community: Community, w: Span
) -> Response:
    """Members total at the window's end, joined, rejoined, left, net, growth and churn rates,
    per period and per channel."""
    async with request.app.state.engine.connect() as conn:
        return framed(community, w, await members_kpi(conn, community, w))


@router.get("/views", response_model=dict[str, Any])
async def views(
    community_id: CommunityPath, request: Request, community: Community, w: Span,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Content views per period and channel, and the most viewed content items."""
    async with request.app.state.engine.connect() as conn:
        return framed(community, w, await views_kpi(conn, community, w, limit))


@router.get("/reactions", response_model=dict[str, Any])
async def reactions(
    community_id: CommunityPath, request: Request, community: Community, w: Asked
) -> Response:
    """Reactions per period, channel and kind; speed; reactions per view."""
    return framed(community, w, await zone_checked(request, community, w, reactions_kpi))


@router.get("/channels", response_model=dict[str, Any])
async def channels(
    community_id: CommunityPath, request: Request, community: Community, w: Span
) -> Response:
    """Per channel: joins, views, reactions, registrations, attendances, feedback; ranked."""
    async with request.app.state.engine.connect() as conn:
        return framed(community, w, await channels_kpi(conn, community, w))


@router.get("/events", response_model=dict[str, Any])
async def events(
    community_id: CommunityPath, request: Request, community: Community, w: Asked
) -> Response:
    """Registered, attended, walk-ins, no-shows, new and repeat participants per period, and
    per event starting in the window."""
    return framed(community, w, await zone_checked(request, community, w, events_kpi))


@router.get("/events/{event_id}", response_model=dict[str, Any])
async def one_event(
    community_id: CommunityPath, event_id: Annotated[str, Path(pattern=ID)],
    request: Request, community: Community,
) -> Response:
    async with request.app.state.engine.connect() as conn:
        found = await event_stats(conn, community, [event_id])
    if not found:
        raise Problem(404, "Not Found", f"no facts about event {event_id!r}")
    return answer({"community_id": community, **found[0]})


@router.get("/feedback", response_model=dict[str, Any])
async def feedback(
    community_id: CommunityPath, request: Request, community: Community, w: Asked,
    sla_hours: SlaHours,
) -> Response:
    """Submitted, answered, resolved; time to first answer; share within the SLA; backlog."""

    async def question(conn: AsyncConnection, community: str, w: Window) -> dict[str, Any]:
        return await feedback_kpi(conn, community, w, sla_hours)

    return framed(community, w, await zone_checked(request, community, w, question))


@router.get("/active", response_model=dict[str, Any])
async def active(
    community_id: CommunityPath, request: Request, community: Community, w: Span
) -> Response:
    """Distinct members who did anything, per period (daily, weekly, monthly actives)."""
    async with request.app.state.engine.connect() as conn:
        return framed(community, w, await active_kpi(conn, community, w))


@router.get("/retention", response_model=dict[str, Any])
async def retention(
    community_id: CommunityPath, request: Request, community: Community, w: Span
) -> Response:
    """Retention by monthly join cohort."""
    async with request.app.state.engine.connect() as conn:
        return framed(community, w, await retention_kpi(conn, community, w))


@router.get("/roles", response_model=dict[str, Any])
async def roles(
    community_id: CommunityPath, request: Request, community: Community
) -> Response:
    """Current members per role, and the roles nobody holds."""
    async with request.app.state.engine.connect() as conn:
        return answer({"community_id": community, **await roles_kpi(conn, community)})


@router.get("/followups", response_model=dict[str, Any])
async def followups(
    community_id: CommunityPath, request: Request, community: Community, w: Span,
    within_days: Annotated[int, Query(ge=0, le=365)] = 7,
) -> Response:
    """Share of events finished in the window whose follow-up duties were all done in time."""
    async with request.app.state.engine.connect() as conn:
        return framed(community, w, await followups_kpi(conn, community, w, within_days))


@router.get("/summary", response_model=dict[str, Any])
async def summary(
    community_id: CommunityPath, request: Request, community: Community, w: Asked,
    sla_hours: SlaHours,
) -> Response:
    """Every headline number for the window (the summary checks the zone in its first round
    trip, queries/summary.py)."""
    try:
        body = await request.app.state.summaries.answer(community, w, sla_hours)
    except TooManyZones as error:
        raise too_many_zones(error) from error
    return framed(community, w, body)


def following_today(w: Window, fixed_from: bool) -> Window:
    """The window moved to end today in its zone (the default 30 days slide along with it)."""
    last = utc_now().astimezone(w.zone).date()
    try:
        return Window(w.first if fixed_from else days_ending(last, 30), last, w.granularity, w.tz)
    except BadWindow:  # a fixed `from` that would now span too long keeps the asked-for window
        return w


@router.get("/stream")
async def stream(
    community_id: CommunityPath, request: Request, community: Community, w: Span,
    sla_hours: SlaHours,
) -> StreamingResponse:
    """Server-Sent Events: the summary now, and again within a second of every change."""

    fixed_to, fixed_from = "to" in request.query_params, "from" in request.query_params

    async def query() -> dict[str, Any]:
        # A stream without `to` follows the clock: after midnight its window ends today.
        now = w if fixed_to else following_today(w, fixed_from)
        return frame(community, now,
                     await request.app.state.summaries.answer(community, now, sla_hours))

    return StreamingResponse(
        kpi_events(request.app.state.notifier, community, query),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
