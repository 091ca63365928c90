"""The fan-out: each fact from the stream becomes one delivery row per enabled subscription of its
community that takes its type. The kernel's runner applies each batch exactly once, in the same
transaction as its bookkeeping, so a redelivered fact never makes a second delivery (and the
unique (subscription, event) pair would refuse one anyway). An erasure takes the member's words
out of the deliveries recorded (docs/adr/0003)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gatherly.contracts import MEMBER_ERASED
from gatherly.envelope import Envelope
from services.webhooks.domain import message_id, takes

SCHEMA = "webhooks"
# A hint for the delivery worker, which also polls: a lost notification delays, never loses.
WAKE_CHANNEL = "webhooks_due"

_ENABLED = text(
    "SELECT id::text AS id, community_id, event_types FROM subscriptions"
    " WHERE enabled AND community_id = ANY(:communities)"
)
_INSERT = text(
    "INSERT INTO deliveries (subscription_id, community_id, event_id, event_type, message_id,"
    " body)"
    " SELECT s, c, e, t, m, b FROM unnest(CAST(:subscriptions AS uuid[]),"
    " CAST(:communities AS text[]), CAST(:events AS uuid[]), CAST(:types AS text[]),"
    " CAST(:messages AS text[]),"
    " CAST(:bodies AS text[])) WITH ORDINALITY AS u(s, c, e, t, m, b, n)"
    " ORDER BY n"
    " ON CONFLICT (subscription_id, event_id) DO NOTHING"
)


ERASED = MEMBER_ERASED
# An erased member's words in the bodies partners were sent (the catalogue's free text, and the
# partner reference a join carries): the delivery log keeps the facts without them. Bodies are
# read as JSON only for the few event types that can hold such words.
_FORGET = text(
    "UPDATE deliveries d SET body = CAST(jsonb_set(CAST(d.body AS jsonb), '{data}',"
    " (CAST(d.body AS jsonb) -> 'data') - 'reason' - 'external_ref') AS text)"
    " FROM unnest(CAST(:cs AS text[]), CAST(:ms AS text[])) AS e(c, m)"
    " WHERE d.community_id = e.c"
    " AND d.event_type IN ('gatherly.member.left', 'gatherly.member.joined',"
    " 'gatherly.thanks.sent')"
    " AND (CAST(d.body AS jsonb) ->> 'subject' = e.m AND d.event_type <> 'gatherly.thanks.sent'"
    " OR CAST(d.body AS jsonb) -> 'data' ->> 'to_member' = e.m"
    " OR CAST(d.body AS jsonb) -> 'data' ->> 'by_member' = e.m)"
    " AND CAST(d.body AS jsonb) -> 'data' ?| ARRAY['reason', 'external_ref']"
)


class FanOutRefused(RuntimeError):
    """A rebuild would send every past fact to partners again."""


class WebhooksProjection:
    name = "webhooks"
    schema = SCHEMA
    # A view is an aggregate of one event: no version row for each (most of a busy stream);
    # a redelivered one makes no second delivery (the unique (subscription, event) pair).
    single_event_types = frozenset({"gatherly.content.viewed"})
    fact_types: frozenset[str] | None = None  # every fact
    durable_commits = True  # a log of what partners were sent, not rebuilt (see reset)

    async def apply(self, conn: AsyncConnection, events: list[Envelope]) -> None:
        communities = sorted({event.community_id for event in events})
        result = await conn.execute(_ENABLED, {"communities": communities})
        subscribers: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        for row in result:
            subscribers[row.community_id].append((row.id, list(row.event_types)))
        rows: dict[str, list[Any]] = defaultdict(list)
        for event in events:
            body: str | None = None
            for subscription_id, patterns in subscribers.get(event.community_id, []):
                if not takes(patterns, event.type):
                    continue
                body = body or event.to_json().decode()
                rows["subscriptions"].append(subscription_id)
                rows["communities"].append(event.community_id)
                rows["events"].append(event.id)
                rows["types"].append(event.type)
                rows["messages"].append(message_id(event.id))
                rows["bodies"].append(body)
        if rows:
            await conn.execute(_INSERT, dict(rows))
            await conn.execute(text(f"NOTIFY {WAKE_CHANNEL}"))
        erased = [e for e in events if e.type == ERASED]
        if erased:  # after the fan-out: the erasure's own batch may hold the member's words
            await conn.execute(_FORGET, {"cs": [e.community_id for e in erased],
                                         "ms": [e.subject for e in erased]})

    async def reset(self, conn: AsyncConnection) -> None:
        """Refused: deliveries are a log of what partners were sent, not a read model. A rebuild
        would fan every past fact out to today's subscriptions. Use resend or recover."""
        raise FanOutRefused(
            "the webhooks fan-out cannot be rebuilt; resend or recover deliveries instead"
        )


def build_projection() -> WebhooksProjection:
    return WebhooksProjection()
