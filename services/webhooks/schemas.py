"""Request and response shapes of the webhooks API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gatherly.web import Moment
from services.webhooks.views import AttemptRecord, DeliveryRecord, Subscription


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="https:// endpoint")
    event_types: list[str] = Field(
        min_length=1, max_length=50,
        description="type patterns: `gatherly.member.joined`, `gatherly.member.*`, `*`",
    )
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class SubscriptionPublic(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionPublic):
    secret: str = Field(description="shown once: keep it to verify signatures")


class SubscriptionPage(BaseModel):
    items: list[SubscriptionPublic]
    next_cursor: str | None


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int | None = Field(
        default=None, ge=0, le=7 * 24 * 3600,
        description="how long the old secret keeps signing beside the new one",
    )


class RotatedSecret(BaseModel):
    secret: str
    previous_secret_expires_at: datetime


class AttemptPublic(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error_class: str | None
    response_excerpt: str = Field(description="the start of the body, printable characters only")
    verdict: str


class DeliveryPublic(BaseModel):
    id: int
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryDetail(DeliveryPublic):
    attempt_log: list[AttemptPublic]


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None


class Recovery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Moment


class Recovered(BaseModel):
    recovered: int


def public(subscription: Subscription) -> SubscriptionPublic:
    return SubscriptionPublic(
        id=subscription.id, url=subscription.url, event_types=subscription.event_types,
        description=subscription.description, enabled=subscription.enabled,
        disabled_reason=subscription.disabled_reason, failing_since=subscription.failing_since,
        version=subscription.version, created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


def delivery_public(record: DeliveryRecord) -> DeliveryPublic:
    return DeliveryPublic(
        id=record.id, webhook_id=record.message_id, event_id=record.event_id,
        event_type=record.event_type, status=record.status, attempts=record.attempts,
        next_attempt_at=record.next_attempt_at if record.status == "pending" else None,
        created_at=record.created_at, finished_at=record.finished_at,
    )


def attempt_public(record: AttemptRecord) -> AttemptPublic:
    return AttemptPublic(
        attempted_at=record.attempted_at, status_code=record.status_code,
        latency_ms=record.latency_ms, error_class=record.error_class,
        response_excerpt=record.response_excerpt, verdict=record.verdict,
    )
