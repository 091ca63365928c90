"""Through Traefik, bodies stream both ways and each service bounds them: a member import of a few
MB reaches the members service (which streams it under its own, larger limit), any other body over
a service's limit gets that service's 413 problem, and the KPI live stream's events reach the
client as they are sent, not when the stream ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bench.system import RunningSystem

pytestmark = pytest.mark.e2e

ROWS = 60_000  # ~4.5 MB of CSV, above the 4 MB the gateway once buffered for every request
IMPORT_LIMIT = 6_000_000  # the members service's own, for this module's system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    with RunningSystem(tmp_path_factory.mktemp("gatherly"),
                       GATHERLY_MEMBERS_IMPORT_MAX_BYTES=str(IMPORT_LIMIT)) as running:
        yield running


def _csv(rows: int) -> bytes:
    lines = (f"telegram,tg-{i},Member number {i} of a big import,m{i}@example.org\n"
             for i in range(rows))
    return ("channel,external_ref,display_name,email\n" + "".join(lines)).encode()


async def test_an_import_of_a_few_megabytes_reaches_the_members_service(
    system: RunningSystem,
) -> None:
    upload = _csv(ROWS)
    assert 4_000_000 < len(upload) < IMPORT_LIMIT
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=120) as client:
        answer = await client.post("/v1/communities/gw-import/members/import", content=upload,
                                   headers={"Content-Type": "text/csv"})
        assert answer.status_code == 200, answer.text[:300]
        assert (answer.json()["created"], answer.json()["rejected"]) == (ROWS, 0)
        listed = await client.get("/v1/communities/gw-import/members", params={"limit": 1})
    assert listed.json()["total"] == ROWS


async def test_an_import_above_the_members_services_own_limit_is_refused_as_a_problem(
    system: RunningSystem,
) -> None:
    """Without the gateway's buffer, the service's own limit still holds and says so."""
    too_big = _csv(ROWS * 2)
    assert len(too_big) > IMPORT_LIMIT
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=120) as client:
        answer = await client.post("/v1/communities/gw-import/members/import", content=too_big,
                                   headers={"Content-Type": "text/csv"})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_a_services_limit_gets_that_services_problem(
    system: RunningSystem, declared: bool
) -> None:
    """The engagement service's own 413, naming its limit, whether the size is declared or not;
    the gateway no longer holds the body, nor answers its own plain 413 above 4 MB."""
    body = b'{"items": [' + b",".join([b'{"kind": "view"}'] * 300_000) + b"]}"
    assert len(body) > 4_000_000
    content = body if declared else _chunks(body)
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=60) as client:
        answer = await client.post("/v1/communities/gw-limit/engagement/batch",
                                   content=content,
                                   headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"] == "the request body exceeds 1000000 bytes"


async def _chunks(body: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def test_the_kpi_stream_sends_its_first_event_through_the_gateway_while_open(
    system: RunningSystem,
) -> None:
    started = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                          timeout=httpx.Timeout(15.0)) as client,
        client.stream("GET", "/v1/communities/gw-stream/kpis/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = await anext(response.aiter_lines())
        # The stream never ends by itself: a first line read here came while it was open.
        assert first == "event: kpis", first
    assert time.monotonic() - started < 15.0
