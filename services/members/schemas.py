"""The members API's request and response shapes (pydantic), and how a member becomes one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatherly.web import Moment
from services.members.domain import MemberStatus
from services.members.views import MemberView


class ProfileFields(BaseModel):
    """Personal fields: kept only in the erasable store, never in events."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254, examples=["ann@example.org"])
    handles: dict[str, str] | None = Field(
        default=None, description="handle per channel", examples=[{"telegram": "@ann"}]
    )
    city: str | None = Field(default=None, max_length=100)
    interests: list[str] | None = Field(default=None, description="tags", max_length=50)


class MemberJoin(ProfileFields):
    channel: str = Field(min_length=2, max_length=32, examples=["telegram"])
    invited_by: uuid.UUID | None = Field(default=None, description="the referring member")
    external_ref: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the member's id on a partner platform; unique per community and channel",
    )
    joined_at: Moment | None = Field(
        default=None, description="when the member joined (defaults to now); ISO 8601 with offset"
    )

    def profile(self) -> dict[str, Any]:
        return self.model_dump(include=set(ProfileFields.model_fields), exclude_unset=True)


class MemberLeave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)
    left_at: Moment | None = None


class MemberRejoin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=2, max_length=32)
    rejoined_at: Moment | None = None


class MemberPublic(BaseModel):
    id: str
    community_id: str
    channel: str
    status: MemberStatus
    invited_by: str | None
    external_ref: str | None
    joined_at: datetime
    left_at: datetime | None
    roles: list[str]
    display_name: str | None = None
    email: str | None = None
    handles: dict[str, str] = Field(default_factory=dict)
    city: str | None = None
    interests: list[str] = Field(default_factory=list)
    version: int


class MemberPage(BaseModel):
    items: list[MemberPublic]
    next_cursor: str | None
    total: int | None = Field(description="members matching the filters; on the first page only")


class HistoryItem(BaseModel):
    id: str
    type: str
    version: int
    time: datetime
    summary: str
    data: dict[str, Any]


class MemberHistory(BaseModel):
    member_id: str
    items: list[HistoryItem]


def public(view: MemberView) -> MemberPublic:
    member, profile = view.member, view.profile
    personal: dict[str, Any] = profile.as_dict() if profile else {}
    return MemberPublic(
        id=member.id,
        community_id=member.community_id,
        channel=member.channel,
        status=member.status,
        invited_by=member.invited_by,
        external_ref=view.external_ref,
        joined_at=member.joined_at,
        left_at=member.left_at,
        roles=sorted(member.roles),
        version=member.version,
        **personal,
    )
