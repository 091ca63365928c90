"""OpenTelemetry's server spans, paid for only while spans are recorded.

`FastAPIInstrumentor` wraps an app's whole stack in OpenTelemetry's ASGI middleware, which runs on
every request even when no tracer provider is installed and every span is dropped: about 11 % of
the members service's CPU per join (docs/benchmarks.md, "Join"). Of its work, a process that
records nothing needs one piece: the W3C context that came with the request (Traefik's, a
client's) made current for the request, so that `telemetry.current_traceparent()` stores it with
the events the request causes. `SpansWhenRecorded` decides per request, since a provider may be
installed after the app was built (tests do): with spans recorded, the instrumented stack exactly
as `FastAPIInstrumentor` built it; otherwise the same stack below OpenTelemetry's middleware, with
only the incoming context attached, as that middleware would attach it.
"""

from __future__ import annotations

import logging
import types

from fastapi import FastAPI
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.propagators.textmap import TextMapPropagator
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gatherly.telemetry import spans_recorded

log = logging.getLogger(__name__)

REQUESTS = frozenset({"http", "websocket"})  # the scopes OpenTelemetry's middleware traces


def spans_only_when_recorded(app: FastAPI) -> None:
    """Make an app that `FastAPIInstrumentor.instrument_app` instrumented skip OpenTelemetry's
    middleware on requests served while spans are not recorded."""
    build_instrumented = app.build_middleware_stack

    def build_middleware_stack(self: FastAPI) -> ASGIApp:
        instrumented = build_instrumented()
        return SpansWhenRecorded(instrumented, below_opentelemetry(instrumented))

    # As FastAPIInstrumentor does: Starlette builds the stack on the first call, through this.
    app.build_middleware_stack = types.MethodType(build_middleware_stack, app)  # type: ignore[method-assign]


def below_opentelemetry(instrumented: ASGIApp) -> ASGIApp:
    """What OpenTelemetry's middleware calls: the app's own stack (its error handler, its
    middleware, the router). The same objects serve both paths, so state is never doubled.

    `FastAPIInstrumentor` builds `ServerErrorMiddleware(OpenTelemetryMiddleware(stack))`; if a
    later version builds something else, every request goes through it, as before this module.
    """
    middleware = getattr(instrumented, "app", None)
    if isinstance(instrumented, ServerErrorMiddleware) and isinstance(
        middleware, OpenTelemetryMiddleware
    ):
        stack: ASGIApp = middleware.app
        return stack
    log.warning("unexpected instrumented stack %r: OpenTelemetry's middleware runs always",
                type(instrumented).__name__)
    return instrumented


class SpansWhenRecorded:
    """The instrumented stack when spans are recorded; otherwise the stack below OpenTelemetry's
    middleware, with the request's incoming trace context current while it runs."""

    def __init__(self, instrumented: ASGIApp, below: ASGIApp) -> None:
        self.instrumented = instrumented
        # Named `app` as every middleware's inner app: FastAPI's own telemetry walks the stack's
        # `.app` chain and, finding OpenTelemetry's middleware, makes no server span of its own.
        self.app = instrumented
        self.below = below
        self._propagator: TextMapPropagator | None = None
        self._fields: frozenset[bytes] = frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in REQUESTS or spans_recorded() or self.below is self.instrumented:
            await self.instrumented(scope, receive, send)
            return
        # As OpenTelemetry's middleware: a request served inside a span (in process) continues
        # it; otherwise the incoming context, empty without trace headers, replaces the caller's.
        if trace.get_current_span() is not trace.INVALID_SPAN:
            await self.below(scope, receive, send)
            return
        token = context.attach(propagate.extract(self._trace_headers(scope)))
        try:
            await self.below(scope, receive, send)
        finally:
            context.detach(token)

    def _trace_headers(self, scope: Scope) -> dict[str, list[str]]:
        """The headers the propagator reads, decoded as OpenTelemetry's ASGI getter does (every
        value of a repeated header, in order). Picking them out costs about 1 µs a request;
        handing the propagator the whole scope through that getter cost about 7 µs."""
        propagator = propagate.get_global_textmap()
        if propagator is not self._propagator:  # set_global_textmap may replace it at any time
            self._fields = frozenset(field.encode() for field in propagator.fields)
            self._propagator = propagator
        carrier: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            if name in self._fields:
                carrier.setdefault(name.decode(), []).append(_text(value))
        return carrier


def _text(value: bytes) -> str:
    # OpenTelemetry's ASGI getter: UTF-8, else the bytes escaped rather than refused.
    try:
        return value.decode()
    except ValueError:
        return value.decode("unicode_escape")
