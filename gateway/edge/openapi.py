"""One API document: every service's `/openapi.json` merged under the gateway's paths.

Fetched from the apps' own ports (the registry's `APPS`) when asked, kept `ttl` seconds. A service
that does not answer is left out of that document (and named in `x-gatherly-unavailable`) rather
than failing the whole page. The identity headers the gateway sets (`X-Gatherly-*`) are removed
from every operation: clients cannot send them, the API key is the only credential.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from gatherly.problem_docs import PROBLEM_SCHEMA, declare_problems

log = logging.getLogger(__name__)

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A community API key (`gk_live_…`) or the operator key.",
}
# What the gateway itself answers before a request reaches any service: no or a revoked key,
# a key without the scope, a key over its rate limit.
GATEWAY_STATUSES = (401, 403, 429)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Document = dict[str, Any]


def merge(own: Document, services: dict[str, Document]) -> Document:
    merged: Document = {
        "openapi": own.get("openapi", "3.1.0"),
        "info": {"title": "Gatherly API", "version": "1"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {"apiKey": SECURITY_SCHEME}},
        "security": [{"apiKey": []}],
        "tags": [],
    }
    for document in (own, *services.values()):
        _add(merged, document)
    for operation in _operations(merged):
        operation["parameters"] = [
            p for p in operation.get("parameters", [])
            if not (p.get("in") == "header" and p.get("name", "").lower().startswith("x-gatherly"))
        ]
        if not operation["parameters"]:
            del operation["parameters"]
        declare_problems(operation, GATEWAY_STATUSES)
    merged["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA
    return merged


def _add(merged: Document, document: Document) -> None:
    for path, item in document.get("paths", {}).items():
        if path.startswith("/v1/"):
            merged["paths"].setdefault(path, {}).update(copy.deepcopy(item))
    schemas = merged["components"]["schemas"]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name in schemas and schemas[name] != schema:
            log.warning("two services define schema %s differently; the first is kept", name)
        schemas.setdefault(name, schema)
    known = {tag["name"] for tag in merged["tags"]}
    merged["tags"] += [t for t in document.get("tags", []) if t.get("name") not in known]


def _operations(document: Document) -> list[dict[str, Any]]:
    return [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in METHODS
    ]


class MergedDocument:
    def __init__(
        self, own: Callable[[], Document], sources: dict[str, str], ttl: float = 10.0
    ) -> None:
        self._own = own
        self._sources = sources
        self._ttl = ttl
        self._cached: tuple[float, Document] | None = None

    async def get(self) -> Document:
        if self._cached is not None and time.monotonic() - self._cached[0] < self._ttl:
            return self._cached[1]
        async with httpx.AsyncClient(timeout=3.0) as client:
            answers = await asyncio.gather(
                *(self._fetch(client, url) for url in self._sources.values())
            )
        found = {n: d for n, d in zip(self._sources, answers, strict=True) if d is not None}
        document = merge(self._own(), found)
        missing = sorted(set(self._sources) - set(found))
        if missing:
            document["x-gatherly-unavailable"] = missing
        else:  # only a complete document is worth keeping
            self._cached = (time.monotonic(), document)
        return document

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> Document | None:
        try:
            response = await client.get(url)
            response.raise_for_status()
            document: Document = response.json()
            return document
        except (httpx.HTTPError, ValueError) as error:
            log.warning("no OpenAPI document from %s: %s", url, error)
            return None
