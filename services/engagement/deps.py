"""What every engagement route shares: the community scope, the handlers, If-Match, problems."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request

from gatherly.web import Problem, community_scope
from services.engagement.domain import DomainError
from services.engagement.handlers import EngagementHandlers
from services.engagement.ingest import IngestHandlers

COMMUNITY_ID = r"^[A-Za-z0-9_-]{1,64}$"


def _handlers(request: Request) -> EngagementHandlers:
    handlers: EngagementHandlers = request.app.state.handlers
    return handlers


def _ingest(request: Request) -> IngestHandlers:
    ingest: IngestHandlers = request.app.state.ingest
    return ingest


Community = Annotated[str, Depends(community_scope)]
CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID)]
Handlers = Annotated[EngagementHandlers, Depends(_handlers)]
Ingest = Annotated[IngestHandlers, Depends(_ingest)]


def parse_if_match(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError as error:
        raise Problem(400, "Bad If-Match", "If-Match must be an ETag this API issued") from error


def problem_of(error: DomainError) -> Problem:
    """A refused command as RFC 9457, naming the field it is about when there is one."""
    extensions: dict[str, Any] = {"field": error.field} if error.field else {}
    return Problem(error.status, error.title, str(error), **extensions)


def problem_body(error: DomainError) -> dict[str, Any]:
    """The same problem as a JSON object, for one item of a batch answer."""
    problem = problem_of(error)
    body: dict[str, Any] = {"type": problem.type, "title": problem.title,
                            "status": problem.status, "detail": problem.detail}
    body.update(problem.extensions)
    return body
