"""Single joins per second through the members app in-process, vs a bare FastAPI POST app.

The app path is the whole command: HTTP (ASGI, in-process) → body validation → profile checks →
the external-reference lookup → append `gatherly.member.joined` (contract and version check) →
member list and profile rows → commit. The baseline is a FastAPI app whose POST route validates
a similar body and does nothing else, driven the same way in the same run. One request at a time.

Run: `.venv/bin/python -m bench.members_join [count]` (default 2000).
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from bench.members_common import BASE, HEADERS, members_database
from services.members.app import create_app


class Join(BaseModel):
    channel: str
    external_ref: str | None = None
    display_name: str | None = None
    email: str | None = None


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post(BASE, status_code=201)
    async def join(body: Join) -> dict[str, str]:
        return {"channel": body.channel}

    return app


def body(i: int) -> dict[str, object]:
    return {"channel": "telegram", "external_ref": f"tg-{i}", "display_name": f"Member {i}",
            "email": f"member{i}@example.org", "interests": ["music"]}


async def joins_per_second(app: FastAPI, count: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://members",
                                 headers=HEADERS) as client:
        for i in range(50):  # warm-up: pools, caches, first-request imports
            (await client.post(BASE, json=body(-i - 1))).raise_for_status()
        start = time.perf_counter()
        for i in range(count):
            response = await client.post(BASE, json=body(i))
            if response.status_code != 201:
                raise AssertionError(f"{response.status_code}: {response.text}")
        return count / (time.perf_counter() - start)


async def main(count: int) -> None:
    async with members_database() as settings:
        bare = await joins_per_second(bare_app(), count)
        app = create_app(settings)
        members = await joins_per_second(app, count)
        await app.state.engine.dispose()
    print(f"members join, {count} joins, one at a time, in-process")
    print(f"  bare FastAPI POST        {bare:9.0f} requests/s")
    print(f"  members app (in-process) {members:9.0f} joins/s")
    print(f"  ratio members/bare       {members / bare:9.2%}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
