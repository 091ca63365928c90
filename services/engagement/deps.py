"""What every engagement route shares: the community scope, the handlers, If-Match, problems."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from gatherly.web import (
    Problem,
)
from services.engagement.domain import DomainError
from services.engagement.handlers import EngagementHandlers
from services.engagement.ingest import IngestHandlers


# `async`, though they only read app state: FastAPI runs a plain `def` dependency in a worker
# thread, a handoff per request that showed as ~4% of the service's samples under batch load.
async def _handlers(request: Request) -> EngagementHandlers:
    handlers: EngagementHandlers = request.app.state.handlers
    return handlers


async def _ingest(request: Request) -> IngestHandlers:
    ingest: IngestHandlers = request.app.state.ingest
    return ingest


Handlers = Annotated[EngagementHandlers, Depends(_handlers)]
Ingest = Annotated[IngestHandlers, Depends(_ingest)]


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
