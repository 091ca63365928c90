"""Problem+json for the errors Traefik produces itself (its `errors` middleware points here).

Traefik would answer an unknown route, an oversized body, or an unreachable, failing or slow
service in plain text; the gateway's `gateway-errors` middleware asks `/errors/{status}` for the
body instead, so every client-facing error is RFC 9457.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gatherly.web import Problem, problem_response

router = APIRouter(include_in_schema=False)

DETAILS = {
    404: "no resource at this path",
    413: "the request body is too large",
    429: "too many requests from this address",
    500: "the service failed; retry shortly",
    502: "the service could not be reached; retry shortly",
    503: "the service is unavailable; retry shortly",
    504: "the service did not answer in time",
}
RETRYABLE = {429, 502, 503, 504}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/errors/{status}", methods=METHODS)
async def gateway_error(status: int, request: Request, url: str | None = None) -> JSONResponse:
    if not 400 <= status <= 599:
        status = 500
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    headers = {"Retry-After": "1"} if status in RETRYABLE else None
    problem = Problem(status, title, DETAILS.get(status), headers=headers)
    return problem_response(problem, url)
