"""Without recorded spans, the trace context a request came with is stored with its event."""

from __future__ import annotations

from unittest import mock

import httpx
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from sqlalchemy import text

from gatherly import request_tracing
from tests.integration.test_members_api import BASE, client, settings

__all__ = ["client", "settings"]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def stored_traceparents(client: httpx.AsyncClient) -> list[str | None]:
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT traceparent FROM events ORDER BY position"))
        return [row.traceparent for row in rows]


async def test_a_join_without_recorded_spans_stores_the_traceparent_it_came_with(
    client: httpx.AsyncClient,
) -> None:
    # Spans not recorded, whatever provider an earlier test installed in this process; and
    # OpenTelemetry's middleware not entered at all (the point: it cost ~11 % of a join).
    with mock.patch.object(request_tracing, "spans_recorded", return_value=False), \
            mock.patch.object(OpenTelemetryMiddleware, "__call__", side_effect=AssertionError):
        traced = await client.post(BASE, json={"channel": "vk", "external_ref": "v1"},
                                   headers={"traceparent": TRACEPARENT})
        untraced = await client.post(BASE, json={"channel": "vk", "external_ref": "v2"})
    assert traced.status_code == 201 and untraced.status_code == 201, traced.text
    assert await stored_traceparents(client) == [TRACEPARENT, None]
