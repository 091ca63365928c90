"""The edge app: Traefik's forwardAuth target, and the answer for /v1 paths no service owns.

`/auth` runs for every request through the gateway, so it is a raw ASGI app (no request object,
no validation, no JSON encoding on the hot path). Traefik sends it the client's `Authorization`
header and the original `X-Forwarded-Uri` (Traefik replaces any client-sent X-Forwarded-* header);
a 2xx lets the request through with the `X-Gatherly-*` headers below copied onto it, any other
answer goes back to the client as it is.

For now the only key is the operator key (`GATHERLY_ADMIN_KEY`), which may act on any community.
Per-community keys (stored hashed, scoped, rate-limited) come with key management.
"""

from __future__ import annotations

import hmac
import json
import re
from urllib.parse import unquote

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gatherly.settings import Settings
from gatherly.web import PROBLEM_JSON, Problem, install_health, install_problem_handlers, instrument

COMMUNITY_IN_PATH = re.compile(r"^/v1/communities/([^/?#]+)")
# What may travel in a header: printable ASCII, no slash (a decoded %2F would change the path).
SAFE_ID = re.compile(r"^[\x21-\x2e\x30-\x7e]{1,200}$")

OPERATOR_SCOPES = b"read,write,admin"
OPERATOR_KEY_ID = b"operator"


def _problem(status: int, title: str, detail: str) -> bytes:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json.dumps(body).encode()


MISSING_KEY = _problem(401, "Unauthorized", "send an API key: Authorization: Bearer <key>")
BAD_KEY = _problem(401, "Unauthorized", "the API key is not valid")
BAD_COMMUNITY = _problem(404, "Not Found", "no such community")


def bearer_token(authorization: bytes) -> bytes | None:
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    return token if scheme.lower() == b"bearer" and token else None


def community_of(uri: bytes) -> str | None:
    """The community id in `/v1/communities/{id}/...`: "" when the path has none, None if unsafe."""
    match = COMMUNITY_IN_PATH.match(uri.decode("latin-1"))
    if match is None:
        return ""
    community = unquote(match.group(1))
    return community if SAFE_ID.match(community) else None


class ForwardAuth:
    """The raw ASGI app behind `/auth`."""

    def __init__(self, admin_key: str | None) -> None:
        self._admin_key = admin_key.encode() if admin_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = uri = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-forwarded-uri":
                uri = value
        key = bearer_token(authorization)
        if key is None or self._admin_key is None or not hmac.compare_digest(key, self._admin_key):
            challenge = b'Bearer realm="gatherly"'
            if key is not None:
                challenge += b', error="invalid_token"'
            problem = BAD_KEY if key is not None else MISSING_KEY
            await _respond(send, 401, problem, [(b"www-authenticate", challenge)])
            return
        community = community_of(uri)
        if community is None:
            await _respond(send, 404, BAD_COMMUNITY, [])
            return
        headers = [
            (b"x-gatherly-community", community.encode()),
            (b"x-gatherly-scopes", OPERATOR_SCOPES),
            (b"x-gatherly-key-id", OPERATOR_KEY_ID),
        ]
        await _respond(send, 200, b"", headers)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    if body:
        headers = [(b"content-type", PROBLEM_JSON.encode()), *headers]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="Gatherly edge", docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app)
    install_health(app, {})
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    # First in the routing table: the route every gateway request goes through.
    app.router.routes.insert(0, Route("/auth", ForwardAuth(admin_key), include_in_schema=False))

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @app.api_route("/v1/{path:path}", methods=methods, include_in_schema=False)
    async def not_routed(path: str) -> None:
        raise Problem(404, "Not Found", f"no resource at /v1/{path}")

    instrument(app)
    return app
