"""What the edge app's RED metrics cost Traefik's forwardAuth call, the one every request makes.

In process, no network: the same `/auth` request (the operator key on `/v1/communities`, so
neither a key nor a community is looked up) is sent to the edge app as built (`HttpMetrics`
outermost) and to the same app with `HttpMetrics` taken out, in alternating rounds so both see
the same machine; the bare `ForwardAuth` callable, with no middleware at all, is the raw baseline.

    .venv/bin/python -m bench.edge_auth_metrics
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI

from gateway.edge.app import create_app
from gatherly.metrics import HttpMetrics
from gatherly.settings import Settings

OPERATOR = "bench-operator-key-0123456789"
ROUNDS, CALLS = 5, 4000
SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/auth", "raw_path": b"/auth", "root_path": "", "query_string": b"",
    "server": ("127.0.0.1", 7483), "client": ("127.0.0.1", 50000),
    "headers": [(b"authorization", f"Bearer {OPERATOR}".encode()),
                (b"x-forwarded-method", b"GET"),
                (b"x-forwarded-uri", b"/v1/communities")],
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def calls_per_second(app: Any) -> float:
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(CALLS):
        await app(dict(SCOPE), receive, send)
    elapsed = time.perf_counter() - started
    assert set(statuses) == {200}, set(statuses)
    return CALLS / elapsed


def without_metrics(settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HttpMetrics]
    return app


async def main() -> None:
    settings = Settings(admin_key=OPERATOR)
    measured, plain = create_app(settings), without_metrics(settings)
    auth = next(r for r in measured.router.routes if getattr(r, "path", "") == "/auth")
    bare = auth.app  # type: ignore[attr-defined]
    rates: dict[str, list[float]] = {"bare": [], "plain": [], "measured": []}
    for _ in range(ROUNDS):
        for name, app in (("bare", bare), ("plain", plain), ("measured", measured)):
            rates[name].append(await calls_per_second(app))
    best = {name: max(values) for name, values in rates.items()}
    print(f"/auth calls per second, best of {ROUNDS} rounds of {CALLS}:")
    print(f"  ForwardAuth alone (raw baseline)   {best['bare']:9,.0f}")
    print(f"  edge app without HttpMetrics       {best['plain']:9,.0f}  "
          f"ratio {best['plain'] / best['bare']:.2f}")
    print(f"  edge app as built (HttpMetrics)    {best['measured']:9,.0f}  "
          f"ratio {best['measured'] / best['bare']:.2f}")
    print(f"  metrics kept {best['measured'] / best['plain']:.2f} of the app's rate")


if __name__ == "__main__":
    asyncio.run(main())
