"""Requests without recorded spans skip OpenTelemetry's middleware but keep its trace context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from unittest import mock

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import baggage, trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from gatherly import request_tracing
from gatherly.telemetry import configure_tracing, current_traceparent
from gatherly.web import instrument

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"
EXPORTER = InMemorySpanExporter()


def app_answering_its_context() -> FastAPI:
    app = FastAPI()

    @app.get("/context")
    async def answer() -> dict[str, Any]:
        return {"traceparent": current_traceparent(), "baggage": dict(baggage.get_all())}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@contextmanager
def middleware_entries() -> Iterator[list[str]]:
    """The paths OpenTelemetry's ASGI middleware was entered for."""
    entered: list[str] = []
    original = OpenTelemetryMiddleware.__call__

    async def counting(self: OpenTelemetryMiddleware, scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope.get("path", scope["type"]))
        await original(self, scope, receive, send)

    with mock.patch.object(OpenTelemetryMiddleware, "__call__", counting):
        yield entered


def spans_recorded(value: bool) -> Any:
    return mock.patch.object(request_tracing, "spans_recorded", return_value=value)


async def get(app: FastAPI, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        return await client.get(path, headers=headers)


def in_a_span(traceparent: str) -> Any:
    """The caller's task inside a span, as a test calling an app in process can be."""
    _, trace_id, span_id, flags = traceparent.split("-")
    span = NonRecordingSpan(SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False,
                                        trace_flags=TraceFlags(int(flags, 16))))
    return trace.use_span(span)


@pytest.mark.parametrize(("headers", "ambient"), [
    ({}, None),
    ({"traceparent": TRACEPARENT}, None),
    ({"traceparent": f"00-{TRACE}-{SPAN}-00", "tracestate": "rojo=00f067aa0ba902b7"}, None),
    ({"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"}, None),  # refused by the propagator
    ({"traceparent": f"01-{TRACE}-{SPAN}-01-later"}, None),  # a later version, read as 00
    ({"traceparent": "not a traceparent"}, None),
    ({"traceparent": TRACEPARENT, "baggage": "tenant=c1,plan=free"}, None),
    ({"baggage": "tenant=c1"}, None),
    ({}, f"00-{'1' * 32}-{'2' * 16}-01"),  # a caller's span continues without trace headers
    ({"traceparent": TRACEPARENT}, f"00-{'1' * 32}-{'2' * 16}-01"),  # and wins over them
])
async def test_without_recorded_spans_a_request_has_the_context_opentelemetrys_middleware_gave(
    headers: dict[str, str], ambient: str | None,
) -> None:
    today = app_answering_its_context()  # the middleware itself, with spans not recorded
    FastAPIInstrumentor.instrument_app(today, tracer_provider=trace.NoOpTracerProvider())
    fast = app_answering_its_context()
    instrument(fast)
    caller = in_a_span(ambient) if ambient else nullcontext()
    with middleware_entries() as entered, spans_recorded(False), caller:
        expected = await get(today, "/context", headers)
        assert entered == ["/context"]
        answered = await get(fast, "/context", headers)
    assert entered == ["/context"], "OpenTelemetry's middleware ran without recorded spans"
    assert answered.json() == expected.json()


async def test_the_incoming_traceparent_is_the_requests_context_without_recorded_spans() -> None:
    app = app_answering_its_context()
    instrument(app)
    with spans_recorded(False):
        answered = await get(app, "/context", {"traceparent": TRACEPARENT})
        without = await get(app, "/context", {})
    assert answered.json()["traceparent"] == TRACEPARENT
    assert without.json()["traceparent"] is None


async def test_with_recorded_spans_every_request_but_health_checks_gets_a_server_span() -> None:
    configure_tracing("gatherly-tests", exporter=EXPORTER)
    EXPORTER.clear()
    app = app_answering_its_context()
    instrument(app)
    with middleware_entries() as entered:
        with spans_recorded(False):  # before a provider is installed: the stack is the same
            await get(app, "/context", {"traceparent": TRACEPARENT})
        # Nor FastAPI's own server span: it makes none below OpenTelemetry's middleware.
        assert entered == [] and EXPORTER.get_finished_spans() == ()
        answered = await get(app, "/context", {"traceparent": TRACEPARENT})
        await get(app, "/healthz", {"traceparent": TRACEPARENT})
    assert entered == ["/context", "/healthz"]
    [server] = [s for s in EXPORTER.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /context"
    assert server.attributes is not None and server.attributes["http.route"] == "/context"
    assert server.parent is not None and server.parent.span_id == int(SPAN, 16)
    span = f"{server.context.span_id:016x}"
    assert answered.json()["traceparent"] == f"00-{TRACE}-{span}-01"
