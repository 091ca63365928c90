"""Problem details (RFC 9457): the one error format of every service, 4xx and 5xx alike."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gatherly.eventstore import ConcurrencyConflict
from gatherly.problem_docs import document_problems

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
