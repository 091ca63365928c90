"""OpenTelemetry: tracing from the environment, and trace context carried through events.

The context of the HTTP request that caused an event is stored with the event (`traceparent`), the
relay continues it in a producer span and in the NATS headers, and a consumer links its batch span
to every message's context, so one client request is one trace end to end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanContext

TRACER_NAME = "gatherly"
# A W3C traceparent exactly as the propagator writes it back: version 00, lower-case hex, and
# neither id all zeros (it refuses those).
AS_PROPAGATED = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def configure_tracing(service_name: str, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider once per process, when spans have somewhere to go: OTLP when
    `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or `exporter` (tests use an in-memory one).

    Without either, no spans are recorded (they cost CPU on every request for nobody), but a
    trace context that arrives with a request (Traefik's, a client's) still travels on: into
    the stored event, the NATS headers and the consumer's links.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if exporter is not None:
            current.add_span_processor(SimpleSpanProcessor(exporter))
        return
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, to store with the events it causes."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from(carrier: Mapping[str, str]) -> Context:
    return propagate.extract(dict(carrier))


def context_from_traceparent(traceparent: str | None) -> Context | None:
    return context_from({"traceparent": traceparent}) if traceparent else None


def trace_headers() -> dict[str, str]:
    """The active context as message headers (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def passed_on(traceparent: str | None) -> dict[str, str] | None:
    """The headers a span that records nothing carries for a stored `traceparent` (it passes
    its parent's context on), when they can be told without making one and two propagator
    round trips; None when only the propagator can tell (a context it would rewrite or refuse)."""
    if traceparent is None:
        return {}
    return {"traceparent": traceparent} if AS_PROPAGATED.fullmatch(traceparent) else None


def spans_recorded() -> bool:
    """Whether `configure_tracing` installed a provider: without one, spans are dropped."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def link_to(carrier: Mapping[str, str]) -> Link | None:
    """A span link to the context a message carries, for batch consumers."""
    span_context: SpanContext = trace.get_current_span(context_from(carrier)).get_span_context()
    return Link(span_context) if span_context.is_valid else None
