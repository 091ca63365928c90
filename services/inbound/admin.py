"""Configuring a community's inbound sources (admin scope, behind the gateway's API-key auth).

Secrets are write-only: an answer tells how many a source has, never what they are.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.inbound import is_standard_secret
from gatherly.web import Problem, community_scope, require_scope
from services.inbound import sources
from services.inbound.sources import TELEGRAM_TOKEN, Kind, Source

router = APIRouter(prefix="/v1/communities/{community_id}/inbound-sources", tags=["inbound"])
Community = Annotated[str, Depends(community_scope)]


class SourcePut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    secrets: list[str] = Field(
        min_length=1, max_length=5,
        description="standard: whsec_ keys; telegram: secret_token of setWebhook; vk: the"
                    " Callback API secret key. Several while one replaces another.",
    )
    confirmation: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="vk only: the string the Callback API confirmation must answer",
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> SourcePut:
        if self.kind is Kind.STANDARD and not all(map(is_standard_secret, self.secrets)):
            raise ValueError("a standard source's secrets are whsec_ + base64 of 24-64 bytes")
        if self.kind is Kind.TELEGRAM and not all(TELEGRAM_TOKEN.match(s) for s in self.secrets):
            raise ValueError("a Telegram secret_token is 1-256 of A-Z, a-z, 0-9, _ and -")
        if self.kind is Kind.VK and (self.confirmation is None
                                     or not all(0 < len(s) <= 100 for s in self.secrets)):
            raise ValueError("a vk source has a confirmation string and secrets of 1-100 chars")
        if self.kind is not Kind.VK and self.confirmation is not None:
            raise ValueError("only a vk source has a confirmation string")
        return self


def _public(source: Source) -> dict[str, Any]:
    return {"name": source.name, "kind": source.kind.value, "secrets": len(source.secrets),
            "path": f"/v1/communities/{source.community_id}/inbound/{source.name}"}


def _admin(x_gatherly_scopes: Annotated[str | None, Header()] = None) -> None:
    require_scope(x_gatherly_scopes, "admin")


@router.put("/{name}", dependencies=[Depends(_admin)])
async def put_source(
    community_id: Community, name: str, body: SourcePut, request: Request, response: Response
) -> dict[str, Any]:
    if not sources.SOURCE_NAME.match(name):
        raise Problem(422, "Invalid source name", "a lowercase slug of 2-32 characters",
                      field="name")
    source = Source(community_id, name, body.kind, tuple(body.secrets), body.confirmation)
    engine: AsyncEngine = request.app.state.engine
    async with engine.begin() as conn:
        created = await sources.put(conn, source)
    response.status_code = 201 if created else 200
    return _public(source)


@router.get("", dependencies=[Depends(_admin)])
async def list_sources(community_id: Community, request: Request) -> dict[str, Any]:
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        found = await sources.listed(conn, community_id)
    return {"items": [_public(source) for source in found]}


@router.delete("/{name}", status_code=204, dependencies=[Depends(_admin)])
async def delete_source(community_id: Community, name: str, request: Request) -> Response:
    engine: AsyncEngine = request.app.state.engine
    async with engine.begin() as conn:
        if not await sources.delete(conn, community_id, name):
            raise Problem(404, "Not Found", f"no inbound source {name!r}")
    return Response(status_code=204)
