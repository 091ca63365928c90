"""HTTP pieces every service shares: problem+json errors, health, community scoping, cursors."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatherly.bus import reachable
from gatherly.eventstore import ConcurrencyConflict
from gatherly.metrics import HttpMetrics, metrics_endpoint
from gatherly.problem_docs import document_problems
from gatherly.settings import Settings

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An RFC 9457 problem the caller can act on."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions


class VersionMismatch(Exception):
    """The caller's `If-Match` names a version the resource no longer has: 412, with its ETag."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the resource is at version {current}")
        self.current = current


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    if instance:
        body["instance"] = instance
    body.update(problem.extensions)
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _database_unavailable(error: BaseException) -> bool:
    if isinstance(
        error, OperationalError | InterfaceError | OSError | TimeoutError | asyncpg.InterfaceError
    ):
        return True
    if isinstance(error, DBAPIError):
        original = getattr(error, "orig", None)
        cause = getattr(original, "__cause__", None)
        return isinstance(
            cause,
            asyncpg.CannotConnectNowError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.AdminShutdownError
            | OSError,
        ) or bool(error.connection_invalidated)
    return False


def _unstorable_text(error: BaseException) -> bool:
    """Client text Postgres cannot hold: a NUL character, or a lone surrogate (not UTF-8)."""
    seen: BaseException | None = error
    while seen is not None:  # SQLAlchemy wraps the driver's error, which may wrap the codec's
        if isinstance(
            seen,
            UnicodeEncodeError
            | asyncpg.CharacterNotInRepertoireError
            | asyncpg.UntranslatableCharacterError,
        ):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def install_problem_handlers(app: FastAPI) -> None:
    """Every 4xx and 5xx leaves as application/problem+json, validation errors included."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)
        return problem_response(error, request.url.path)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(error.status_code, "Error")
        detail = error.detail if isinstance(error.detail, str) else None
        return problem_response(
            Problem(error.status_code, title, detail, headers=dict(error.headers or {})),
            request.url.path,
        )

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg"), "type": e.get("type")}
            for e in error.errors()
        ]
        problem = Problem(
            422, "Invalid request", "the request does not match the schema", errors=errors
        )
        return problem_response(problem, request.url.path)

    async def on_conflict(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ConcurrencyConflict)
        return problem_response(
            Problem(409, "Conflict", "the resource changed meanwhile; reload and retry"),
            request.url.path,
        )

    async def on_stale(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, VersionMismatch)
        problem = Problem(
            412, "Precondition Failed", str(error), headers={"ETag": f'"{error.current}"'}
        )
        return problem_response(problem, request.url.path)

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        if _unstorable_text(error):
            # The write's transaction was rolled back: the input is wrong, nothing is stored.
            problem = Problem(
                422, "Invalid text",
                "text must be UTF-8 without NUL (U+0000) characters or unpaired surrogates",
            )
        elif _database_unavailable(error):
            log.warning("database unavailable: %s", error)
            problem = Problem(
                503, "Service Unavailable", "the database is unreachable; retry shortly",
                headers={"Retry-After": "1"},
            )
        else:
            log.exception("unhandled error on %s", request.url.path)
            problem = Problem(500, "Internal Server Error")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ConcurrencyConflict, on_conflict)
    app.add_exception_handler(VersionMismatch, on_stale)
    # Infrastructure errors get their own entries: Starlette re-raises whatever reaches the
    # catch-all `Exception` handler, and uvicorn then drops the keep-alive connection, which the
    # gateway reports to the next request on it as a 502.
    infrastructure_errors = (
        DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, UnicodeEncodeError,
    )
    for infrastructure in infrastructure_errors:
        app.add_exception_handler(infrastructure, on_unexpected)
    app.add_exception_handler(Exception, on_unexpected)
    # The document says so too: the 422 and the kernel's other problems, on every operation.
    document_problems(app)


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
    """413 problem+json for a body over `max_bytes`, declared or streamed, before any handler."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(
            413, "Content Too Large", f"the request body exceeds {self.max_bytes} bytes"
        )
        await problem_response(problem, scope.get("path"))(scope, receive, send)


class _TooLarge(Exception):
    pass


def instrument(app: FastAPI) -> None:
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")


def community_scope(
    community_id: str,
    x_gatherly_community: Annotated[str | None, Header()] = None,
    x_gatherly_scopes: Annotated[str | None, Header()] = None,
) -> str:
    """The community in the path, if the gateway's auth says this caller may see it.

    Another community's key gets 404, not 403: it must not learn that the community exists.
    An operator key comes with an empty community and the admin scope.
    """
    scopes = set((x_gatherly_scopes or "").split(","))
    if x_gatherly_community == community_id or (not x_gatherly_community and "admin" in scopes):
        return community_id
    raise Problem(404, "Not Found", f"no community {community_id!r}")


# A community id is also a NATS subject token (DESIGN §6): no dots, spaces or wildcards.
COMMUNITY_ID = r"^[A-Za-z0-9_-]{1,64}$"
CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID)]
Community = Annotated[str, Depends(community_scope)]


def parse_if_match(if_match: str | None) -> int | None:
    """The aggregate version an `If-Match` names (our ETags are versions), or None if absent."""
    if if_match is None:
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
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


def install_service_basics(app: FastAPI, settings: Settings, engine: AsyncEngine) -> None:
    """What every service app has: problem+json errors, health and readiness (database, NATS),
    the body limit, `Idempotency-Key` on POST, RED metrics and `/metrics`, and tracing. Call it
    from `create_app` before including the routers."""
    # Imported here: gatherly.idempotency and gatherly.inbound build on this module.
    from gatherly.idempotency import Idempotency, IdempotencyStore
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
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: it measures what the client waits for, 413s included.
    app.add_middleware(HttpMetrics)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    instrument(app)
