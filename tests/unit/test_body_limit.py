"""The body limit: 413 problem+json over the limit, a larger limit only where a path asks for it."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from gatherly.web import BodyLimit


async def echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body()
    await PlainTextResponse(str(len(body)))(scope, receive, send)


async def post(path: str, size: int, *, declared: bool = True) -> httpx.Response:
    app = BodyLimit(echo_size, max_bytes=100, larger={"/members/import": 1_000})

    async def chunks():  # type: ignore[no-untyped-def]
        yield b"x" * size

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        content = b"x" * size if declared else chunks()
        return await client.post(path, content=content)


async def test_a_body_over_the_limit_is_refused_as_a_problem() -> None:
    response = await post("/v1/communities/c1/members", 101)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (await post("/v1/communities/c1/members", 100)).text == "100"


async def test_a_streamed_body_without_a_length_is_counted() -> None:
    assert (await post("/v1/communities/c1/members", 101, declared=False)).status_code == 413


async def test_only_the_larger_path_gets_the_larger_limit() -> None:
    assert (await post("/v1/communities/c1/members/import", 900)).text == "900"
    assert (await post("/v1/communities/c1/members/import", 1_001)).status_code == 413
    assert (await post("/v1/communities/c1/members/imports-other", 900)).status_code == 413
