"""HTTP routes for webhook subscriptions and their delivery log; every route needs `admin`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from gatherly.web import (
    CommunityPath,
    community_scope,
    cursor_position,
    encode_cursor,
    parse_if_match,
    require_scope,
)
from services.webhooks import views
from services.webhooks.handlers import (
    ChangeSubscription,
    Subscribe,
    SubscriptionNotFound,
    WebhookHandlers,
)
from services.webhooks.schemas import (
    DeliveryDetail,
    DeliveryPage,
    Recovered,
    Recovery,
    RotatedSecret,
    SecretRotation,
    SubscriptionCreate,
    SubscriptionPage,
    SubscriptionPublic,
    SubscriptionUpdate,
    SubscriptionWithSecret,
    attempt_public,
    delivery_public,
    public,
)


def admin_of_community(
    community: Annotated[str, Depends(community_scope)],
    x_gatherly_scopes: Annotated[str | None, Header()] = None,
) -> str:
    """Webhooks send a community's facts out of Gatherly: only its admins may point them."""
    require_scope(x_gatherly_scopes, "admin")
    return community


def handlers(request: Request) -> WebhookHandlers:
    found: WebhookHandlers = request.app.state.handlers
    return found


router = APIRouter(prefix="/v1/communities/{community_id}/webhooks", tags=["webhooks"])
Community = Annotated[str, Depends(admin_of_community)]
Handlers = Annotated[WebhookHandlers, Depends(handlers)]
IfMatch = Annotated[str | None, Header()]


def etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@router.post("", status_code=201, response_model=SubscriptionWithSecret)
async def subscribe(
    community_id: CommunityPath, body: SubscriptionCreate, response: Response,
    community: Community, webhooks: Handlers,
) -> SubscriptionWithSecret:
    """Subscribe an endpoint; the answer holds its signing secret, shown this once."""
    subscription, secret = await webhooks.subscribe(Subscribe(
        community, body.url, body.event_types, body.description, body.enabled))
    response.headers["Location"] = f"/v1/communities/{community}/webhooks/{subscription.id}"
    etag(response, subscription.version)
    return SubscriptionWithSecret(**public(subscription).model_dump(), secret=secret)


@router.get("", response_model=SubscriptionPage)
async def list_subscriptions(
    community_id: CommunityPath, community: Community, webhooks: Handlers,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: str | None = None,
) -> SubscriptionPage:
    after = cursor_position(cursor)
    async with webhooks.engine.connect() as conn:
        found = await views.page(conn, community, after, limit)
    more = encode_cursor({"after": found[-1].listed}) if len(found) == limit else None
    return SubscriptionPage(items=[public(s) for s in found], next_cursor=more)


@router.get("/{subscription_id}", response_model=SubscriptionPublic)
async def show_subscription(
    community_id: CommunityPath, subscription_id: uuid.UUID, response: Response,
    community: Community, webhooks: Handlers,
) -> SubscriptionPublic:
    async with webhooks.engine.connect() as conn:
        found = await views.get(conn, community, str(subscription_id))
    if found is None:
        raise SubscriptionNotFound(str(subscription_id))
    etag(response, found.version)
    return public(found)


@router.patch("/{subscription_id}", response_model=SubscriptionPublic)
async def change_subscription(
    community_id: CommunityPath, subscription_id: uuid.UUID, body: SubscriptionUpdate,
    response: Response, community: Community, webhooks: Handlers, if_match: IfMatch = None,
) -> SubscriptionPublic:
    """Change the URL, types, description or enabled flag; enabling clears a disable."""
    changed = await webhooks.change(ChangeSubscription(
        community, str(subscription_id), body.url, body.event_types, body.description,
        body.enabled, parse_if_match(if_match)))
    etag(response, changed.version)
    return public(changed)


@router.delete("/{subscription_id}", status_code=204)
async def unsubscribe(
    community_id: CommunityPath, subscription_id: uuid.UUID, community: Community,
    webhooks: Handlers,
) -> Response:
    await webhooks.remove(community, str(subscription_id))
    return Response(status_code=204)


@router.post("/{subscription_id}/rotate-secret", response_model=RotatedSecret)
async def rotate_secret(
    community_id: CommunityPath, subscription_id: uuid.UUID, community: Community,
    webhooks: Handlers, body: SecretRotation | None = None,
) -> RotatedSecret:
    """A new secret, shown once; the old one signs beside it until the grace period ends."""
    grace = body.grace_seconds if body else None
    _, secret, until = await webhooks.rotate_secret(
        community, str(subscription_id),
        timedelta(seconds=grace) if grace is not None else None)
    return RotatedSecret(secret=secret, previous_secret_expires_at=until)


@router.get("/{subscription_id}/deliveries", response_model=DeliveryPage)
async def delivery_log(
    community_id: CommunityPath, subscription_id: uuid.UUID, community: Community,
    webhooks: Handlers, limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
) -> DeliveryPage:
    """Messages sent or to send to this endpoint, newest first."""
    before = cursor_position(cursor, "before") if cursor else None
    async with webhooks.engine.connect() as conn:
        if await views.get(conn, community, str(subscription_id)) is None:
            raise SubscriptionNotFound(str(subscription_id))
        found = await views.deliveries(conn, str(subscription_id), before, limit, status)
    more = encode_cursor({"before": found[-1].id}) if len(found) == limit else None
    return DeliveryPage(items=[delivery_public(d) for d in found], next_cursor=more)


@router.get("/{subscription_id}/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def delivery_attempts(
    community_id: CommunityPath, subscription_id: uuid.UUID, delivery_id: int,
    community: Community, webhooks: Handlers,
) -> DeliveryDetail:
    """One message and every attempt to deliver it."""
    async with webhooks.engine.connect() as conn:
        if await views.get(conn, community, str(subscription_id)) is None:
            raise SubscriptionNotFound(str(subscription_id))
        found = await views.delivery(conn, str(subscription_id), delivery_id)
        if found is None:
            raise SubscriptionNotFound(f"delivery {delivery_id}")
        attempts = await views.attempts(conn, delivery_id)
    return DeliveryDetail(**delivery_public(found).model_dump(),
                          attempt_log=[attempt_public(a) for a in attempts])


@router.post("/{subscription_id}/deliveries/{delivery_id}/resend", status_code=202)
async def resend(
    community_id: CommunityPath, subscription_id: uuid.UUID, delivery_id: int,
    community: Community, webhooks: Handlers,
) -> dict[str, str]:
    """Send one message again (same `webhook-id`), delivered or not, with a fresh schedule."""
    await webhooks.resend(community, str(subscription_id), delivery_id)
    return {"status": "pending"}


@router.post("/{subscription_id}/recover", status_code=202, response_model=Recovered)
async def recover(
    community_id: CommunityPath, subscription_id: uuid.UUID, body: Recovery,
    community: Community, webhooks: Handlers,
) -> Recovered:
    """Send again every message that failed and was recorded since `since`."""
    count = await webhooks.recover(community, str(subscription_id), body.since)
    return Recovered(recovered=count)
