"""The relay's trace headers without recorded spans."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly import outbox
from gatherly.envelope import Envelope
from gatherly.outbox import Relay
from gatherly.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def envelope(traceparent: str | None) -> Envelope:
    return Envelope(id="e1", source="/test", type="gatherly.member.joined", subject="m1",
                    community_id="c1", sequence=1, time=T0, data={}, traceparent=traceparent)


@pytest.mark.parametrize("traceparent", [
    None,
    f"00-{TRACE}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-00",
    f"00-{TRACE.upper()}-{SPAN}-01",  # not as the propagator writes it: it refuses upper case
    f"00-{'0' * 32}-{SPAN}-01",
    f"00-{TRACE}-{'0' * 16}-01",
    f"01-{TRACE}-{SPAN}-01-later",  # a later version, read as 00
    "not a traceparent",
])
def test_without_recorded_spans_the_relay_sends_what_the_no_op_span_would(
    traceparent: str | None,
) -> None:
    relay = Relay(Settings(), "members", mock.Mock(spec=AsyncEngine))
    # As in a process without a provider, whatever an earlier test installed in this one: the
    # tracer a no-op, and spans said not recorded, then recorded (through the no-op span).
    with mock.patch.object(outbox, "tracer", trace.NoOpTracer):
        with mock.patch.object(outbox, "spans_recorded", return_value=False):
            fast = relay.message(envelope(traceparent)).headers
        with mock.patch.object(outbox, "spans_recorded", return_value=True):
            through_span = relay.message(envelope(traceparent)).headers
    assert fast == through_span
