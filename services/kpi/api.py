"""KPI query routes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from gatherly.envelope import utc_now
from gatherly.web import Problem, community_scope
from services.kpi.queries import members_by_day

COMMUNITY_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_DAYS = 3660

router = APIRouter(prefix="/v1/communities/{community_id}/kpis", tags=["kpis"])

Community = Annotated[str, Depends(community_scope)]
CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID)]


class MembersDayPublic(BaseModel):
    date: date
    joined: int
    rejoined: int
    left: int
    net: int
    total: int


class MembersKpi(BaseModel):
    community_id: str
    from_: date
    to: date
    total: int
    joined: int
    left: int
    rejoined: int
    days: list[MembersDayPublic]


@router.get("/members", response_model=MembersKpi)
async def members_kpi(
    community_id: CommunityPath,
    request: Request,
    community: Community,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
) -> MembersKpi:
    """Members joined, left and rejoined per day (UTC), and the total at each day's end."""
    last = to or utc_now().date()
    first = from_ or last - timedelta(days=29)
    if first > last:
        raise Problem(400, "Bad range", "`from` is after `to`")
    if (last - first).days >= MAX_DAYS:
        raise Problem(400, "Bad range", f"at most {MAX_DAYS} days per request")
    async with request.app.state.engine.connect() as conn:
        days = await members_by_day(conn, community, first, last)
    return MembersKpi(
        community_id=community,
        from_=first,
        to=last,
        total=days[-1].total if days else 0,
        joined=sum(d.joined for d in days),
        left=sum(d.left for d in days),
        rejoined=sum(d.rejoined for d in days),
        days=[
            MembersDayPublic(
                date=d.day, joined=d.joined, rejoined=d.rejoined, left=d.left, net=d.net,
                total=d.total,
            )
            for d in days
        ],
    )
