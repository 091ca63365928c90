"""`/v1/communities/{id}/keys`: create (secret shown once), list (never the secret), revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.edge import key_secrets, store
from gatherly.web import (
    Community,
    CommunityPath,
    Moment,
    Problem,
    cursor_position,
    encode_cursor,
    require_scope,
)

Scope = Literal["read", "write", "admin"]

router = APIRouter(prefix="/v1/communities/{community_id}/keys", tags=["api keys"])


def admin_scope(x_gatherly_scopes: Annotated[str | None, Header()] = None) -> None:
    require_scope(x_gatherly_scopes, "admin")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=3, examples=[["read", "write"]])
    expires_at: Moment | None = Field(default=None, description="ISO 8601 with offset")
    rate_per_second: float | None = Field(default=None, gt=0, le=100_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, value: list[Scope]) -> list[Scope]:
        if len(set(value)) != len(value):
            raise ValueError("scopes must be distinct")
        return value

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future")
        return value


class KeyPublic(BaseModel):
    id: str
    community_id: str
    name: str | None
    scopes: list[str]
    rate_per_second: float | None
    burst: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class KeyCreated(KeyPublic):
    secret: str = Field(description="shown once; store it now, it cannot be read again")


class KeyPage(BaseModel):
    items: list[KeyPublic]
    next_cursor: str | None


def public(key: store.KeyRecord) -> KeyPublic:
    return KeyPublic(
        id=key.id, community_id=key.community_id, name=key.name, scopes=key.scopes,
        rate_per_second=key.rate_per_second, burst=key.burst, expires_at=key.expires_at,
        revoked_at=key.revoked_at, created_at=key.created_at,
    )


Admin = Depends(admin_scope)


async def existing_community(request: Request, community: str) -> None:
    async with request.app.state.engine.connect() as conn:
        if await store.get_community(conn, community) is None:
            raise Problem(404, "Not Found", f"no community {community!r}")


@router.post("", status_code=201, response_model=KeyCreated, dependencies=[Admin])
async def create_key(
    community_id: CommunityPath, community: Community, body: KeyCreate,
    request: Request, response: Response,
) -> KeyCreated:
    await existing_community(request, community)
    key_id = key_secrets.new_key_id()
    secret = key_secrets.new_secret(key_id)
    values = {
        "id": key_id, "community_id": community,
        "secret_hash": key_secrets.digest(secret.encode()), **body.model_dump(),
    }
    async with request.app.state.engine.begin() as conn:
        key = await store.insert_key(conn, values)
    request.app.state.keys.remember(key)
    response.headers["Location"] = f"/v1/communities/{community}/keys/{key.id}"
    # Never kept anywhere, the idempotency record included.
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated(**public(key).model_dump(), secret=secret)


@router.get("", response_model=KeyPage, dependencies=[Admin])
async def list_keys(
    community_id: CommunityPath, community: Community, request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> KeyPage:
    await existing_community(request, community)
    after = cursor_position(cursor)
    async with request.app.state.engine.connect() as conn:
        rows = await store.page_keys(conn, community, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor({"after": rows[-1].seq}) if more else None
    return KeyPage(items=[public(k) for k in rows], next_cursor=next_cursor)


@router.delete("/{key_id}", status_code=204, dependencies=[Admin])
async def revoke_key(
    community_id: CommunityPath, key_id: str, community: Community, request: Request
) -> Response:
    async with request.app.state.engine.begin() as conn:
        revoked = await store.revoke_key(conn, community, key_id)
    if not revoked:
        raise Problem(404, "Not Found", f"no key {key_id!r} in this community")
    request.app.state.keys.forget(key_id)
    return Response(status_code=204)
