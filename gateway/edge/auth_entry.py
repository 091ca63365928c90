"""`/auth` ahead of the edge app's middleware stack.

Traefik calls `/auth` before every request through the gateway, so its cost is paid on every
join, read and write. Through the whole FastAPI stack (OpenTelemetry's ASGI middleware, RED
metrics, idempotency, body limit, exception handlers, router) a call cost about 150 µs in
process, against a few µs for `ForwardAuth` itself. `/auth` is a GET without a body that answers
with bodies it built itself, so of those layers it needs only two, kept here: the RED metrics
(counted under the route `/auth`, as before) and, when spans are recorded at all, a server span
in the caller's trace. An unexpected error still answers 500 problem+json.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatherly.metrics import HTTP_DURATION, HTTP_REQUESTS
from gatherly.problems import PROBLEM_JSON
from gatherly.telemetry import context_from, tracer

AUTH_PATH = "/auth"
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
UNEXPECTED = b'{"type":"about:blank","title":"Internal Server Error","status":500}'

log = logging.getLogger(__name__)


class AuthEntry:
    """Wraps `ForwardAuth` with what the stack gave it: metrics, a span, a 500 on a bug."""

    def __init__(self, auth: ASGIApp) -> None:
        self._auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        try:
            with _server_span(scope, method) as span:
                await self._auth(scope, receive, noting_status)
                if span is not None:
                    span.set_attribute("http.response.status_code", status)
        except Exception:
            log.exception("unhandled error on %s", AUTH_PATH)
            if not status:
                status = 500
                await _unexpected(send)
        finally:
            HTTP_REQUESTS.labels(method, AUTH_PATH, str(status or 500)).inc()
            HTTP_DURATION.labels(method, AUTH_PATH).observe(time.perf_counter() - started)


@contextlib.contextmanager
def _server_span(scope: Scope, method: str) -> Iterator[trace.Span | None]:
    """A span only when a tracer provider records them (`gatherly.telemetry.configure_tracing`):
    otherwise the answer goes to Traefik, which carries no context on from it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        yield None
        return
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in TRACE_HEADERS
    }
    with tracer().start_as_current_span(
        f"{method} {AUTH_PATH}", context=context_from(carrier), kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": AUTH_PATH},
    ) as span:
        yield span


async def _unexpected(send: Send) -> None:
    headers = [(b"content-type", PROBLEM_JSON.encode()),
               (b"content-length", str(len(UNEXPECTED)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": UNEXPECTED})
