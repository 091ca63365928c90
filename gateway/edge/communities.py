"""`/v1/communities`: create and list (operator key only), read and update one community."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.edge import store
from gatherly.channels import BUILT_IN_CHANNELS, CHANNEL_SLUG
from gatherly.web import (
    Community,
    CommunityPath,
    Problem,
    cursor_position,
    encode_cursor,
    parse_if_match,
    require_scope,
)

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
CHANNEL = CHANNEL_SLUG.pattern

router = APIRouter(prefix="/v1/communities", tags=["communities"])


def valid_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA time zone {value!r}") from error
    return value


def distinct_channels(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("custom channels must be distinct")
    if built_in := sorted(BUILT_IN_CHANNELS.intersection(value)):
        raise ValueError(f"{', '.join(built_in)}: built-in already, not a custom channel")
    return value


class CommunityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(pattern=SLUG, examples=["alumni-2024"])
    time_zone: str = Field(default="UTC", examples=["Europe/Berlin"], max_length=64)
    custom_channels: list[Annotated[str, Field(pattern=CHANNEL)]] = Field(
        default_factory=list, max_length=50
    )
    feedback_sla_hours: int = Field(default=24, ge=1, le=24 * 90)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        return valid_time_zone(value)

    @field_validator("custom_channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        return distinct_channels(value)


class CommunityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=SLUG)
    time_zone: str | None = Field(default=None, max_length=64)
    custom_channels: list[Annotated[str, Field(pattern=CHANNEL)]] | None = Field(
        default=None, max_length=50
    )
    feedback_sla_hours: int | None = Field(default=None, ge=1, le=24 * 90)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        return None if value is None else valid_time_zone(value)

    @field_validator("custom_channels")
    @classmethod
    def _channels(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else distinct_channels(value)


class CommunityPublic(BaseModel):
    id: str
    name: str
    slug: str
    time_zone: str
    custom_channels: list[str]
    feedback_sla_hours: int
    version: int
    created_at: datetime
    updated_at: datetime


class CommunityPage(BaseModel):
    items: list[CommunityPublic]
    next_cursor: str | None


def public(community: store.Community) -> CommunityPublic:
    return CommunityPublic(
        id=community.id, name=community.name, slug=community.slug,
        time_zone=community.time_zone, custom_channels=community.custom_channels,
        feedback_sla_hours=community.feedback_sla_hours, version=community.version,
        created_at=community.created_at, updated_at=community.updated_at,
    )


def operator_only(x_gatherly_key_id: Annotated[str | None, Header()] = None) -> None:
    if x_gatherly_key_id != "operator":
        raise Problem(403, "Forbidden", "managing communities needs the operator key")


Operator = Depends(operator_only)


def slug_taken(slug: str) -> Problem:
    return Problem(409, "Conflict", f"the slug {slug!r} is taken by another community")


@router.post("", status_code=201, response_model=CommunityPublic, dependencies=[Operator])
async def create_community(
    body: CommunityCreate, request: Request, response: Response
) -> CommunityPublic:
    values = {"id": str(uuid.uuid4()), **body.model_dump()}
    try:
        async with request.app.state.engine.begin() as conn:
            community = await store.insert_community(conn, values)
    except store.SlugTaken as error:
        raise slug_taken(str(error)) from error
    response.headers["Location"] = f"/v1/communities/{community.id}"
    response.headers["ETag"] = f'"{community.version}"'
    return public(community)


@router.get("", response_model=CommunityPage, dependencies=[Operator])
async def list_communities(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> CommunityPage:
    after = cursor_position(cursor)
    async with request.app.state.engine.connect() as conn:
        rows = await store.page_communities(conn, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor({"after": rows[-1].seq}) if more else None
    return CommunityPage(items=[public(c) for c in rows], next_cursor=next_cursor)


@router.get("/{community_id}", response_model=CommunityPublic)
async def get_community(
    community_id: CommunityPath, community: Community, request: Request, response: Response
) -> CommunityPublic:
    async with request.app.state.engine.connect() as conn:
        found = await store.get_community(conn, community)
    if found is None:
        raise Problem(404, "Not Found", f"no community {community!r}")
    response.headers["ETag"] = f'"{found.version}"'
    return public(found)


@router.patch("/{community_id}", response_model=CommunityPublic)
async def update_community(
    community_id: CommunityPath,
    community: Community,
    body: CommunityUpdate,
    request: Request,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
    x_gatherly_scopes: Annotated[str | None, Header()] = None,
) -> CommunityPublic:
    require_scope(x_gatherly_scopes, "admin")
    expected = parse_if_match(if_match)
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise Problem(422, "Invalid request", "a field may be changed, not cleared")
    try:
        async with request.app.state.engine.begin() as conn:
            found = await store.get_community(conn, community, for_update=True)
            if found is None:
                raise Problem(404, "Not Found", f"no community {community!r}")
            if expected is not None and expected != found.version:
                raise Problem(
                    412, "Precondition Failed", "the community changed meanwhile",
                    headers={"ETag": f'"{found.version}"'},
                )
            updated = await store.update_community(conn, community, changes) if changes else found
    except store.SlugTaken as error:
        raise slug_taken(str(error)) from error
    response.headers["ETag"] = f'"{updated.version}"'
    return public(updated)
