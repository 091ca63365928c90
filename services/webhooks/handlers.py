"""Subscription commands: check the rules (URL, addresses, patterns) first, then one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly import contracts
from gatherly.envelope import utc_now
from gatherly.settings import Settings
from gatherly.web import VersionMismatch
from services.webhooks import views
from services.webhooks.domain import check_patterns, new_secret
from services.webhooks.egress import checked_endpoint
from services.webhooks.views import Subscription


@dataclass(frozen=True, slots=True)
class Subscribe:
    community_id: str
    url: str
    event_types: list[str]
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ChangeSubscription:
    community_id: str
    subscription_id: str
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None
    expected_version: int | None = None


class SubscriptionNotFound(Exception):
    pass




class WebhookHandlers:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    async def _check_url(self, url: str) -> None:
        await checked_endpoint(url, allow_http=self.settings.allow_http_webhooks,
                               allow_loopback=self.settings.allow_loopback_webhooks)

    async def subscribe(self, command: Subscribe) -> tuple[Subscription, str]:
        """The new subscription and its secret, which is never shown again."""
        patterns = check_patterns(command.event_types, contracts.schemas())
        await self._check_url(command.url)
        secret = new_secret()
        async with self.engine.begin() as conn:
            subscription = await views.insert(
                conn, command.community_id, str(uuid.uuid4()), command.url, patterns,
                command.description, command.enabled, secret,
            )
        return subscription, secret

    async def change(self, command: ChangeSubscription) -> Subscription:
        patterns = (check_patterns(command.event_types, contracts.schemas())
                    if command.event_types is not None else None)
        if command.url is not None:
            await self._check_url(command.url)
        async with self.engine.begin() as conn:
            current = await self._load(conn, command.community_id, command.subscription_id)
            if command.expected_version not in (None, current.version):
                raise VersionMismatch(current.version)
            changed = replace(
                current,
                url=command.url if command.url is not None else current.url,
                event_types=patterns if patterns is not None else current.event_types,
                description=(command.description if command.description is not None
                             else current.description),
                enabled=command.enabled if command.enabled is not None else current.enabled,
            )
            return await views.save(conn, changed)

    async def remove(self, community_id: str, subscription_id: str) -> None:
        async with self.engine.begin() as conn:
            if not await views.delete(conn, community_id, subscription_id):
                raise SubscriptionNotFound(subscription_id)

    async def rotate_secret(
        self, community_id: str, subscription_id: str, grace: timedelta | None
    ) -> tuple[Subscription, str, datetime]:
        """A new current secret; the old one keeps signing beside it until the grace ends."""
        grace = grace if grace is not None else timedelta(
            hours=self.settings.webhook_secret_grace_hours)
        secret = new_secret()
        until = utc_now() + grace
        async with self.engine.begin() as conn:
            subscription = await self._load(conn, community_id, subscription_id)
            await views.retire_secrets(conn, subscription_id, until)
            await views.add_secret(conn, subscription_id, secret)
        return subscription, secret, until

    async def resend(self, community_id: str, subscription_id: str, delivery_id: int) -> None:
        async with self.engine.begin() as conn:
            await self._load(conn, community_id, subscription_id)
            if not await views.send_again(conn, subscription_id, delivery_id=delivery_id):
                raise SubscriptionNotFound(f"delivery {delivery_id}")

    async def recover(self, community_id: str, subscription_id: str, since: datetime) -> int:
        async with self.engine.begin() as conn:
            await self._load(conn, community_id, subscription_id)
            return await views.send_again(conn, subscription_id, failed_since=since)

    async def _load(
        self, conn: AsyncConnection, community_id: str, subscription_id: str
    ) -> Subscription:
        found = await views.get(conn, community_id, subscription_id, lock=True)
        if found is None:
            raise SubscriptionNotFound(subscription_id)
        return found
