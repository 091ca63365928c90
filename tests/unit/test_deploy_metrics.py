"""RED metrics label requests by route template, so ids in paths never become series; every
process, the edge app and the webhook sender included, has its metrics where the scrape looks."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY

from gateway.edge.app import create_app
from gateway.edge.ratelimit import POLICY, Limit, RateLimiter
from gatherly.metrics import (
    UNMATCHED_ROUTE,
    HttpMetrics,
    metrics_endpoint,
    projector_metrics_port,
    relay_metrics_port,
    worker_metrics_port,
)
from gatherly.registry import PROJECTIONS, WORKERS, WRITERS
from gatherly.settings import Settings


def count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("gatherly_http_requests_total", labels) or 0.0


def app_with_metrics() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/communities/{community_id}/things/{thing_id}")
    async def thing(community_id: str, thing_id: str) -> dict[str, str]:
        if thing_id == "missing":
            raise HTTPException(404)
        return {"id": thing_id}

    app.add_middleware(HttpMetrics)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return app


async def test_requests_are_counted_by_route_template_and_status() -> None:
    route = "/v1/communities/{community_id}/things/{thing_id}"
    before_ok, before_404 = count("GET", route, "200"), count("GET", route, "404")
    before_unmatched = count("GET", UNMATCHED_ROUTE, "404")
    transport = httpx.ASGITransport(app=app_with_metrics())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for thing in ("a", "b", "c"):
            assert (await client.get(f"/v1/communities/x/things/{thing}")).status_code == 200
        assert (await client.get("/v1/communities/x/things/missing")).status_code == 404
        assert (await client.get("/nowhere/at/all")).status_code == 404
        exposed = (await client.get("/metrics")).text
    assert count("GET", route, "200") == before_ok + 3
    assert count("GET", route, "404") == before_404 + 1
    assert count("GET", UNMATCHED_ROUTE, "404") == before_unmatched + 1
    assert "gatherly_http_request_duration_seconds_bucket" in exposed
    assert 'route="/metrics"' not in exposed


def test_each_relay_and_projector_gets_its_own_metrics_port() -> None:
    settings = Settings(relay_metrics_port=9000, projector_metrics_port=9100)
    relays = [relay_metrics_port(settings, schema) for schema in WRITERS]
    assert relays == list(range(9000, 9000 + len(WRITERS)))
    assert projector_metrics_port(settings, next(iter(PROJECTIONS))) == 9100
    off = Settings(relay_metrics_port=0, projector_metrics_port=0)
    assert relay_metrics_port(off, WRITERS[0]) == projector_metrics_port(off, "kpi") == 0


def test_the_webhook_sender_serves_metrics_after_the_projections() -> None:
    settings = Settings(projector_metrics_port=9100)
    ports = [worker_metrics_port(settings, name) for name in WORKERS]
    assert ports == list(range(9100 + len(PROJECTIONS) + 1, 9100 + len(PROJECTIONS) + 1
                               + len(WORKERS)))
    assert worker_metrics_port(Settings(projector_metrics_port=0), next(iter(WORKERS))) == 0


def test_every_default_port_of_one_host_is_its_own() -> None:
    """`gatherly up` runs everything on one host: a registered projection or worker more must
    not take a port another process already listens on (the webhook sender once landed on the
    NATS exporter's)."""
    settings = Settings()
    listening = {
        name: getattr(settings, name) for name in Settings.model_fields
        if name.endswith("_port") and name not in ("relay_metrics_port", "projector_metrics_port")
    }
    listening |= {f"relay {w}": relay_metrics_port(settings, w) for w in WRITERS}
    listening |= {f"projector {p}": projector_metrics_port(settings, p) for p in PROJECTIONS}
    listening["a test's projection"] = projector_metrics_port(settings, "unregistered")
    listening |= {f"worker {w}": worker_metrics_port(settings, w) for w in WORKERS}
    taken: dict[int, list[str]] = {}
    for name, port in listening.items():
        taken.setdefault(port, []).append(name)
    assert {port: names for port, names in taken.items() if len(names) > 1} == {}


def refused(policy: str) -> float:
    labels = {"policy": policy}
    return REGISTRY.get_sample_value("gatherly_rate_limited_requests_total", labels) or 0.0


def test_a_refused_request_is_counted_by_policy_and_an_allowed_one_is_not() -> None:
    limiter, limit = RateLimiter(), Limit(rate_per_second=1.0, burst=2)
    before = refused(POLICY)
    decisions = [limiter.take("key-1", limit, now=100.0).allowed for _ in range(5)]
    assert decisions == [True, True, False, False, False]
    assert refused(POLICY) == before + 3


async def test_the_edge_app_counts_forward_auth_answers_under_auth() -> None:
    before = count("GET", "/auth", "401")
    app = create_app(Settings(admin_key="an-operator-key-for-tests"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/auth")).status_code == 401  # no key: refused before the store
        exposed = await client.get("/metrics")
    assert count("GET", "/auth", "401") == before + 1
    assert exposed.status_code == 200 and "gatherly_rate_limited_requests_total" in exposed.text
