"""What the edge app's RED metrics (and its span check) cost Traefik's forwardAuth call, the one
every request makes.

In process, no network: the same `/auth` request (the operator key on `/v1/communities`, so
neither a key nor a community is looked up) is sent to the edge app as served (`/auth` goes to
`AuthEntry`, ahead of the middleware stack: metrics, a span when spans are recorded) and, as the
raw baseline, to the bare `ForwardAuth` callable, in alternating rounds so both see the same
machine.

    .venv/bin/python -m bench.edge_auth_metrics
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.edge.app import create_app
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


async def main() -> None:
    served = create_app(Settings(admin_key=OPERATOR))
    bare = served.auth_entry._auth  # type: ignore[attr-defined]
    rates: dict[str, list[float]] = {"bare": [], "served": []}
    for _ in range(ROUNDS):
        for name, app in (("bare", bare), ("served", served)):
            rates[name].append(await calls_per_second(app))
    best = {name: max(values) for name, values in rates.items()}
    print(f"/auth calls per second, best of {ROUNDS} rounds of {CALLS}:")
    print(f"  ForwardAuth alone (raw baseline)   {best['bare']:9,.0f}")
    print(f"  edge app as served (AuthEntry)     {best['served']:9,.0f}  "
          f"ratio {best['served'] / best['bare']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
