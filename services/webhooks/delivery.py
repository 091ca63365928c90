"""The delivery worker (`gatherly work webhooks-delivery`): send each endpoint's line in order,
sign every attempt, log it, and decide what comes next (done, retry later, give up, disable).

Per endpoint one task works the line: it sends the head, and in the transaction that records the
result it claims the next head if that is due. Endpoints are served concurrently, up to
`webhook_concurrency` at once. Delivery is at least once: a worker killed between the receiver's
2xx and the commit of the result sends that message again, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
import httpx
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gatherly.db import create_engine
from gatherly.envelope import DomainEvent, utc_now
from gatherly.eventstore import EventStore
from gatherly.metrics import (
    WEBHOOK_ATTEMPT_DURATION,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS_DISABLED,
    serve_metrics,
    worker_metrics_port,
)
from gatherly.settings import Settings, to_libpq_url
from services.webhooks import delivery_queue as queue
from services.webhooks.delivery_queue import Claimed
from services.webhooks.domain import (
    DISABLED,
    Verdict,
    failing_too_long,
    next_attempt_delay,
    retry_after,
    sign,
    verdict,
)
from services.webhooks.egress import Attempt, new_client, send
from services.webhooks.projection import SCHEMA, WAKE_CHANNEL

log = logging.getLogger(__name__)
RETRYABLE = (OSError, TimeoutError, asyncpg.PostgresError, DBAPIError)


class DeliveryWorker:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.store = EventStore(source=f"/gatherly/{SCHEMA}")
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}
        # Longer than any request can take: a live claim never runs out under its sender.
        self.lease = settings.webhook_timeout_seconds + 30
        self.attempts = 0

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        async with new_client(self.settings.webhook_timeout_seconds) as client:
            try:
                while not self.stopping.is_set():
                    try:
                        await self._claim_and_start(client)
                    except RETRYABLE as error:
                        log.warning("webhooks delivery: %s; retrying", error)
                    await self._sleep(self.settings.webhook_poll_seconds)
            finally:
                listener.cancel()
                for task in [listener, *self._busy.values()]:
                    task.cancel()
                await asyncio.gather(listener, *self._busy.values(), return_exceptions=True)

    async def _claim_and_start(self, client: httpx.AsyncClient) -> None:
        free = self.settings.webhook_concurrency - len(self._busy)
        if free <= 0:
            return
        async with self.engine.begin() as conn:
            heads = await queue.claim_heads(conn, free, list(self._busy), self.lease)
        for head in heads:
            task = asyncio.create_task(self._work_line(client, head))
            self._busy[head.subscription_id] = task
            task.add_done_callback(self._on_done(head.subscription_id))

    def _on_done(self, subscription_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_: asyncio.Task[None]) -> None:
            self._busy.pop(subscription_id, None)
            self._wake.set()  # a line that stopped may have a later head due: look again now

        return done

    async def _work_line(self, client: httpx.AsyncClient, head: Claimed | None) -> None:
        while head is not None and not self.stopping.is_set():
            current = head
            try:
                head = await self._deliver(client, current)
            except RETRYABLE as error:
                # The lease runs out and the head is claimed again: nothing is lost.
                log.warning("webhooks delivery %d: %s", current.id, error)
                return

    async def _deliver(self, client: httpx.AsyncClient, head: Claimed) -> Claimed | None:
        headers = sign(head.message_id, utc_now(), head.body, head.secrets).as_dict()
        attempt = await send(
            client, head.url, head.body, headers,
            allow_http=self.settings.allow_http_webhooks,
            allow_loopback=self.settings.allow_loopback_webhooks,
        )
        self.attempts += 1
        judged = verdict(attempt.status).value
        WEBHOOK_ATTEMPTS.labels(judged).inc()
        WEBHOOK_ATTEMPT_DURATION.labels(judged).observe(attempt.latency_ms / 1000)
        settled: list[Counter] = []
        async with self.engine.begin() as conn:
            more = await self._record(conn, head, attempt, settled)
            following = (
                await queue.claim_next(conn, head.subscription_id, self.lease) if more else None
            )
        for counter in settled:  # after the commit: a rolled-back outcome never happened
            counter.inc()
        return following

    async def _record(self, conn: AsyncConnection, head: Claimed, attempt: Attempt,
                      settled: list[Counter]) -> bool:
        """Log the attempt and settle the delivery; False when the endpoint is gone or off.
        `settled` gathers what to count once the transaction commits."""
        endpoint = await queue.lock_endpoint(conn, head.subscription_id)
        if endpoint is None:
            return False  # deleted meanwhile: its deliveries went with it
        outcome = verdict(attempt.status)
        await queue.log_attempt(conn, head.id, attempt.status, attempt.latency_ms,
                                attempt.error_class, attempt.response_excerpt, outcome.value)
        attempts = head.attempts + 1
        if outcome is Verdict.DELIVERED:
            await queue.finish(conn, head.id, "delivered", attempts)
            settled.append(WEBHOOK_DELIVERIES.labels("delivered"))
            if endpoint.failing_since is not None:
                await queue.mark_endpoint(conn, head.subscription_id, failing=False)
            return endpoint.enabled
        now = utc_now()
        if outcome is Verdict.RETRY:
            asked = retry_after(attempt.retry_after, now)
            delay = next_attempt_delay(attempts, self.settings.webhook_retry_scale, asked)
            if delay is None:
                await queue.finish(conn, head.id, "failed", attempts)
                settled.append(WEBHOOK_DELIVERIES.labels("failed"))
            else:
                await queue.retry_at(conn, head.id, attempts, now + delay)
                settled.append(WEBHOOK_DELIVERIES.labels("retried"))
        else:
            await queue.finish(conn, head.id, "failed", attempts)
            settled.append(WEBHOOK_DELIVERIES.labels("failed"))
        limit = timedelta(hours=self.settings.webhook_disable_after_failing_hours)
        reason = "gone" if outcome is Verdict.GONE else (
            "failing" if failing_too_long(endpoint.failing_since, now, limit) else None)
        await queue.mark_endpoint(conn, head.subscription_id, failing=True,
                                  disabled_reason=reason if endpoint.enabled else None)
        if reason and endpoint.enabled:
            await self._record_disabled(conn, head, reason, attempt, endpoint.failing_since)
            settled.append(WEBHOOK_ENDPOINTS_DISABLED.labels(reason))
            return False
        return endpoint.enabled and outcome is not Verdict.RETRY

    async def _record_disabled(self, conn: AsyncConnection, head: Claimed, reason: str,
                               attempt: Attempt, failing_since: datetime | None) -> None:
        """The fact goes into this service's event store; the relay puts it on the stream."""
        now = utc_now()
        data: dict[str, object] = {"reason": reason, "disabled_at": now.isoformat()}
        if failing_since is not None:
            data["failing_since"] = failing_since.isoformat()
        if attempt.status is not None:
            data["last_status"] = attempt.status
        version = await self.store.stream_version(conn, head.subscription_id)
        await self.store.append(
            conn, stream_id=head.subscription_id, community_id=head.community_id,
            expected_version=version, events=[DomainEvent(DISABLED, data, now)],
        )
        log.warning("webhook %s disabled: %s", head.subscription_id, reason)

    async def _listen(self) -> None:
        """Wake on the fan-out's NOTIFY; a hint only (the loop polls too)."""
        while not self.stopping.is_set():
            try:
                conn = await asyncpg.connect(to_libpq_url(self.settings.database), timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await self._sleep(1.0)
                continue
            try:
                await conn.execute(f"SET search_path TO {SCHEMA}, public")
                await conn.add_listener(WAKE_CHANNEL, lambda *_: self._wake.set())
                while not self.stopping.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()


def _show_every_outcome() -> None:
    """Every series from the start, at 0: a dashboard (and an alert on `increase`) sees a first
    failure or a first disabled endpoint, not a series that appears out of nowhere."""
    for judged in Verdict:
        WEBHOOK_ATTEMPTS.labels(judged.value)
        WEBHOOK_ATTEMPT_DURATION.labels(judged.value)
    for outcome in ("delivered", "retried", "failed"):
        WEBHOOK_DELIVERIES.labels(outcome)
    for reason in ("gone", "failing"):
        WEBHOOK_ENDPOINTS_DISABLED.labels(reason)


async def main(settings: Settings) -> None:
    """Run until cancelled (`gatherly work webhooks-delivery`; `gatherly up` supervises it)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = create_engine(settings.database, SCHEMA, pool_size=4)
    serve_metrics(settings.host, worker_metrics_port(settings, "webhooks-delivery"))
    _show_every_outcome()
    worker = DeliveryWorker(settings, engine)
    try:
        await worker.run()
    finally:
        worker.stopping.set()
        await engine.dispose()
