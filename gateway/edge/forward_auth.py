"""`/auth`: Traefik's forwardAuth target, a raw ASGI app because it runs for every request.

Traefik calls it with GET, the client's `Authorization` header, and the original method and URI in
`X-Forwarded-Method` / `X-Forwarded-Uri` (Traefik replaces any client-sent X-Forwarded-* header).
A 2xx lets the request through with the `X-Gatherly-*` headers copied onto it (the caller's
community, scopes and key, and the community's time zone, feedback SLA and custom channels); any
other answer (problem+json, with its `WWW-Authenticate`, `Retry-After` and `RateLimit*` headers)
goes back to the client as it is.

In order: no or bad key → 401; another community's path → 404 (it must not learn the community
exists); missing scope → 403; over the key's rate → 429. The operator key (`GATHERLY_ADMIN_KEY`)
may act on every community with every scope and is not rate-limited.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from urllib.parse import unquote

from starlette.types import Receive, Scope, Send

from gateway.edge import key_secrets
from gateway.edge.key_cache import KeyCache, KeyStoreUnavailable
from gateway.edge.ratelimit import RateLimiter
from gatherly.web import PROBLEM_JSON

COMMUNITY_IN_PATH = re.compile(r"^/v1/communities/([^/?#]+)(/[^/?#]*)?")
OPERATOR_ONLY = re.compile(r"^/v1/communities/?(\?|$)")
# What may travel in a header: printable ASCII, no slash (a decoded %2F would change the path).
SAFE_ID = re.compile(r"^[\x21-\x2e\x30-\x7e]{1,200}$")
READ_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})

OPERATOR_SCOPES = b"read,write,admin"
OPERATOR_KEY_ID = b"operator"
CHALLENGE = b'Bearer realm="gatherly"'


def _problem(status: int, title: str, detail: str) -> bytes:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json.dumps(body).encode()


MISSING_KEY = _problem(401, "Unauthorized", "send an API key: Authorization: Bearer <key>")
BAD_KEY = _problem(401, "Unauthorized", "the API key is not valid")
EXPIRED_KEY = _problem(401, "Unauthorized", "the API key has expired")
BAD_COMMUNITY = _problem(404, "Not Found", "no such community")
OPERATOR_ONLY_PROBLEM = _problem(403, "Forbidden", "managing communities needs the operator key")
RATE_LIMITED = _problem(429, "Too Many Requests", "this API key is over its rate limit")
KEYS_UNAVAILABLE = _problem(503, "Service Unavailable", "the key store is unreachable; retry")
SCOPE_PROBLEMS = {
    scope: _problem(403, "Forbidden", f"this API key lacks the {scope!r} scope")
    for scope in ("read", "write", "admin")
}


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


def required_scope(method: bytes, uri: bytes) -> str:
    """Reads need `read`, writes `write`; keys, and changing a community, need `admin`."""
    match = COMMUNITY_IN_PATH.match(uri.decode("latin-1"))
    below = match.group(2) if match else None
    if match is not None and (below is None or below == "/"):
        return "read" if method in READ_METHODS else "admin"
    if below == "/keys":
        return "admin"
    return "read" if method in READ_METHODS else "write"


class ForwardAuth:
    def __init__(self, admin_key: str | None, keys: KeyCache, limiter: RateLimiter) -> None:
        self._admin_key = admin_key.encode() if admin_key else None
        self._keys = keys
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = uri = b""
        method = b"GET"
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-forwarded-uri":
                uri = value
            elif name == b"x-forwarded-method":
                method = value.upper()
        token = bearer_token(authorization)
        if token is None:
            await _respond(send, 401, MISSING_KEY, [(b"www-authenticate", CHALLENGE)])
            return
        community = community_of(uri)
        if self._admin_key is not None and hmac.compare_digest(token, self._admin_key):
            await self._operator(send, community)
            return
        await self._community_key(send, token, community, method, uri)

    async def _operator(self, send: Send, community: str | None) -> None:
        if community is None:
            await _respond(send, 404, BAD_COMMUNITY, [])
            return
        settings = await self._keys.community_headers(community)
        await _allow(send, community.encode(), OPERATOR_SCOPES, OPERATOR_KEY_ID, settings)

    async def _community_key(
        self, send: Send, token: bytes, community: str | None, method: bytes, uri: bytes
    ) -> None:
        key_id = key_secrets.key_id_of(token)
        try:
            key = await self._keys.get(key_id) if key_id else None
        except KeyStoreUnavailable:
            await _respond(send, 503, KEYS_UNAVAILABLE, [(b"retry-after", b"1")])
            return
        if key is None or not key_secrets.matches(token, key.secret_hash):
            await _unauthorized(send, BAD_KEY)
            return
        if key.expires_at is not None and key.expires_at <= time.time():
            await _unauthorized(send, EXPIRED_KEY)
            return
        if community is None or (community and community != key.community_id):
            await _respond(send, 404, BAD_COMMUNITY, [])
            return
        if OPERATOR_ONLY.match(uri.decode("latin-1")):
            await _respond(send, 403, OPERATOR_ONLY_PROBLEM, [])
            return
        scope = required_scope(method, uri)
        if scope not in key.scopes:
            await _respond(send, 403, SCOPE_PROBLEMS[scope], [])
            return
        decision = self._limiter.take(key.id, key.limit, time.monotonic())
        if not decision.allowed:
            await _respond(send, 429, RATE_LIMITED, decision.headers())
            return
        settings = await self._keys.community_headers(key.community_id)
        await _allow(send, key.community_id.encode(), key.scopes_header, key.id.encode(),
                     [*settings, *decision.headers()])


async def _allow(
    send: Send, community: bytes, scopes: bytes, key_id: bytes,
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = [
        (b"x-gatherly-community", community),
        (b"x-gatherly-scopes", scopes),
        (b"x-gatherly-key-id", key_id),
        *extra,
    ]
    await _respond(send, 200, b"", headers)


async def _unauthorized(send: Send, problem: bytes) -> None:
    await _respond(
        send, 401, problem, [(b"www-authenticate", CHALLENGE + b', error="invalid_token"')]
    )


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    if body:
        headers = [(b"content-type", PROBLEM_JSON.encode()), *headers]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
