"""The API document declares the problem+json answers the kernel gives, on every operation.

FastAPI documents only the success and a JSON 422 whose body (`HTTPValidationError`) is not the
one `install_problem_handlers` sends. This rewrites each app's document once, in one place: the
422 becomes a problem, and each operation gains the problems the kernel's own machinery answers
for a request of its shape (a bad cursor, If-Match or Idempotency-Key, an unknown community or
resource, a concurrent write, an oversized body). A service documents its own extra ones itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem; extensions (such as `errors` or `rule`) may follow.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
WRITES = ("post", "put", "patch", "delete")
Document = dict[str, Any]


def documented_problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def declare_problems(operation: dict[str, Any], statuses: Iterable[int]) -> None:
    """Adds a problem answer for each status the operation does not document yet."""
    responses = operation.setdefault("responses", {})
    for status in statuses:
        responses.setdefault(str(status), documented_problem(status))


def kernel_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    headers = {p["name"].lower() for p in parameters if p.get("in") == "header"}
    # 400: a cursor, If-Match, Idempotency-Key or value the schema cannot judge (a time zone).
    statuses = {400, 422}
    if "{" in path:
        statuses.add(404)  # another community's id, or a resource that is not there
    if method in WRITES:
        statuses |= {409, 413}  # a concurrent write or a request still running; the body limit
    if "if-match" in headers:
        statuses.add(412)
    return statuses


def with_problems(document: Document) -> Document:
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            # Validation errors leave as problems (install_problem_handlers), not FastAPI's shape.
            operation["responses"]["422"] = documented_problem(422)
            declare_problems(operation, kernel_statuses(path, method, operation))
    return document


def document_problems(app: FastAPI) -> None:
    generate: Callable[[], Document] = app.openapi

    def openapi() -> Document:
        # FastAPI caches the document it generates: the rewrite runs on that one dict, and is
        # idempotent, so repeating it costs a walk over the paths and changes nothing.
        return with_problems(generate())

    app.openapi = openapi  # type: ignore[method-assign]
