"""Outbound HTTP: resolve an endpoint, refuse forbidden addresses, and send to the address that was
checked (the `Host` header and TLS name stay the endpoint's), following no redirect."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass

import httpx

from services.webhooks.addresses import Endpoint, IPAddress, check_addresses, parse_endpoint
from services.webhooks.domain import WebhookRuleError, excerpt

USER_AGENT = "Gatherly-Webhooks/1"
READ_AT_MOST = 4096  # of a response body: the log keeps an excerpt, nothing more is needed


async def resolve(host: str) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout=5
        )
    except (OSError, TimeoutError):
        return []
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


async def checked_endpoint(
    url: str, *, allow_http: bool, allow_loopback: bool
) -> tuple[Endpoint, list[IPAddress]]:
    """The endpoint and its addresses, or `WebhookRuleError` naming the broken rule."""
    endpoint = parse_endpoint(url, allow_http=allow_http)
    addresses = check_addresses(
        endpoint.host, await resolve(endpoint.host), allow_loopback=allow_loopback
    )
    return endpoint, addresses


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt saw. `status` None: no HTTP answer (see `error_class`)."""

    status: int | None
    latency_ms: int
    error_class: str | None = None
    response_excerpt: str = ""
    retry_after: str | None = None


def new_client(timeout: float) -> httpx.AsyncClient:
    """No redirects, no proxies or netrc from the environment, bounded timeouts."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        headers={"User-Agent": USER_AGENT},
    )


async def send(
    client: httpx.AsyncClient, url: str, body: str, headers: dict[str, str], *,
    allow_http: bool, allow_loopback: bool,
) -> Attempt:
    """One POST. The URL is checked again here, on the addresses it resolves to now."""
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        endpoint, addresses = await checked_endpoint(
            url, allow_http=allow_http, allow_loopback=allow_loopback
        )
    except WebhookRuleError as error:
        return Attempt(None, elapsed(), error.rule)
    request = client.build_request(
        "POST", endpoint.url_for(addresses[0]), content=body.encode(),
        headers={**headers, "Host": endpoint.host_header, "Content-Type": "application/json"},
        # TLS must verify the endpoint's name, not the address we connect to.
        extensions={"sni_hostname": endpoint.host},
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.TimeoutException:
        return Attempt(None, elapsed(), "timeout")
    except httpx.HTTPError as error:
        return Attempt(None, elapsed(), _error_class(error))
    try:
        start = b""
        async for chunk in response.aiter_raw():
            start += chunk
            if len(start) >= READ_AT_MOST:
                break
    except httpx.HTTPError:
        pass  # the status is what counts; a body cut short changes nothing
    finally:
        await response.aclose()
    return Attempt(response.status_code, elapsed(), None, excerpt(start),
                   response.headers.get("Retry-After"))


def _error_class(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        tls = "SSL" in str(error) or "certificate" in str(error)
        return "tls_error" if tls else "connect_error"
    if isinstance(error, httpx.RemoteProtocolError):
        return "protocol_error"
    return "network_error"
