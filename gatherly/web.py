"""HTTP pieces every service shares: health, body limit, community scoping and channels, cursors,
and the one call that installs them all (`install_service_basics`). Problems live in
gatherly.problems."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import AfterValidator, AwareDatetime, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatherly import channels
from gatherly.bus import reachable
from gatherly.metrics import HttpMetrics, metrics_endpoint
from gatherly.problems import (
    PROBLEM_JSON,
    Problem,
    VersionMismatch,
    install_problem_handlers,
    problem_response,
)
from gatherly.request_tracing import spans_only_when_recorded
from gatherly.settings import Settings

# What a request may say of a moment and of a count: what every store, stream and KPI can hold.
# A moment of year 1 with an offset east of UTC is before Python's first instant once in UTC (a
# 500 where a 422 belongs); a counter's total lands in `bigint` sums.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
MAX_COUNT = 10**12


def storable(moment: datetime) -> datetime:
    """`moment`, or ValueError when it is outside the years a Moment takes."""
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"a moment between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(storable)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


log = logging.getLogger(__name__)

__all__ = [
    "PROBLEM_JSON",
    "Count",
    "Moment",
    "Problem",
    "VersionMismatch",
    "install_problem_handlers",
    "problem_response",
]


ReadinessCheck = Callable[[], Awaitable[bool]]


def install_health(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    """`/healthz`: the process answers. `/readyz`: every dependency answers."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                results[name] = "ok" if await check() else "unavailable"
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__}"
        ready = all(result == "ok" for result in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": results},
            status_code=200 if ready else 503,
        )


def nats_check(url: str) -> ReadinessCheck:
    async def check() -> bool:
        return await reachable(url)

    return check


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    return check


class BodyLimit:
    """413 problem+json for a body over `max_bytes`, declared or streamed, before any handler.

    `larger` gives paths ending in a suffix their own limit (a bulk upload read as a stream)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    def limit_for(self, path: str) -> int:
        return next((n for end, n in self.larger.items() if path.endswith(end)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        problem = Problem(413, "Content Too Large", f"the request body exceeds {limit} bytes")
        await problem_response(problem, scope.get("path"))(scope, receive, send)


class _TooLarge(Exception):
    pass


def instrument(app: FastAPI) -> None:
    """Server spans for every request but health checks, made only while spans are recorded;
    without them, only the incoming trace context is kept (gatherly.request_tracing)."""
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    spans_only_when_recorded(app)


async def community_scope(
    community_id: str,
    x_gatherly_community: Annotated[str | None, Header()] = None,
    x_gatherly_scopes: Annotated[str | None, Header()] = None,
) -> str:
    """The community in the path, if the gateway's auth says this caller may see it.

    Another community's key gets 404, not 403: it must not learn that the community exists.
    An operator key comes with an empty community and the admin scope. `async`, though it
    awaits nothing: FastAPI runs a plain `def` dependency in a worker thread, a hop that cost
    about a tenth of a single join's time.
    """
    scopes = set((x_gatherly_scopes or "").split(","))
    if x_gatherly_community == community_id or (not x_gatherly_community and "admin" in scopes):
        return community_id
    raise Problem(404, "Not Found", f"no community {community_id!r}")


async def community_channels(
    x_gatherly_community_channels: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> frozenset[str] | None:
    """The community's custom channels as the gateway passes them; None on a direct call that
    bypassed the gateway (gatherly.channels). Give it to `channels.unknown_channel` with every
    channel a write names."""
    return channels.custom_channels(x_gatherly_community_channels)


CustomChannels = Annotated[frozenset[str] | None, Depends(community_channels)]


# A community id is also a NATS subject token (DESIGN §6): no dots, spaces or wildcards.
COMMUNITY_ID = r"^[A-Za-z0-9_-]{1,64}$"
CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID)]
Community = Annotated[str, Depends(community_scope)]


def parse_if_match(if_match: str | None) -> int | None:
    """The aggregate version an `If-Match` names (our ETags are versions), or None when there is
    none to check: absent, or `*` (any version of a resource that exists). If-Match compares
    strongly (RFC 9110 §13.1.1), so a weak ETag never matches: 412."""
    if if_match is None or if_match.strip() == "*":
        return None
    if if_match.strip().startswith("W/"):
        raise Problem(412, "Precondition Failed",
                      "If-Match compares strong ETags; a weak one never matches")
    try:
        return int(if_match.strip().strip('"'))
    except ValueError as error:
        raise Problem(400, "Bad If-Match", "If-Match must be an ETag this API issued") from error


def require_scope(scopes_header: str | None, scope: str) -> None:
    if scope not in set((scopes_header or "").split(",")):
        raise Problem(403, "Forbidden", f"this key lacks the {scope!r} scope")


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, json.JSONDecodeError) as error:
        raise Problem(400, "Bad cursor", "the cursor is not one this API issued") from error
    if not isinstance(value, dict):
        raise Problem(400, "Bad cursor", "the cursor is not one this API issued")
    return value


def cursor_position(cursor: str | None, key: str = "after", default: int = 0) -> int:
    """The row position a list cursor holds under `key`. A cursor of the right shape around any
    other value (text, null, a bool, past a bigint) was never issued: 400, not a failed query."""
    if not cursor:
        return default
    value = decode_cursor(cursor).get(key, default)
    if type(value) is not int or not 0 <= value < 2**63:
        raise Problem(400, "Bad cursor", "the cursor is not one this API issued")
    return value


def install_service_basics(
    app: FastAPI,
    settings: Settings,
    engine: AsyncEngine,
    *,
    larger_bodies: Mapping[str, int] | None = None,
) -> None:
    """What every service app has: problem+json errors, health and readiness (database, NATS),
    the body limit, `Idempotency-Key` on POST, RED metrics and `/metrics`, and tracing. Call it
    from `create_app` before including the routers."""
    # Imported here: gatherly.idempotency and gatherly.inbound build on this module.
    from gatherly.idempotency import Idempotency
    from gatherly.idempotency_store import IdempotencyStore
    from gatherly.inbound import InboundReceipts

    install_problem_handlers(app)
    install_health(app, {"database": database_check(engine), "nats": nats_check(settings.nats)})
    # Partner deliveries already recorded (services/*/inbound.py), purged after the retention.
    app.state.inbound_receipts = InboundReceipts(
        timedelta(hours=settings.inbound_receipt_retention_hours)
    )
    # Added before BodyLimit, so it runs inside it: the body is bounded before it is buffered.
    retention = timedelta(hours=settings.idempotency_retention_hours)
    app.add_middleware(Idempotency, store=IdempotencyStore(engine, retention))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, larger=larger_bodies)
    # Added last, so it runs first: it measures what the client waits for, 413s included.
    app.add_middleware(HttpMetrics)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    instrument(app)
