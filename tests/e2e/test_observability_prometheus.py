"""Prometheus (Debian's package) scrapes the running system with deploy/prometheus/prometheus.yml:
every metric the Grafana dashboards query exists, and the pipeline's metrics move with traffic.

NATS is started here with its monitoring port, beside `gatherly.nats_metrics` (the compose
`nats-exporter`); the system runs against it as against an external server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bench.system import RunningSystem
from gatherly.local.nats import EmbeddedNats
from gatherly.metrics import worker_metrics_port
from gatherly.registry import APPS, PROJECTIONS, WORKERS, WRITERS
from gatherly.settings import Settings
from tests.unit.test_deploy_dashboards import DASHBOARDS, dashboard_metrics, expressions

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def prometheus_binary() -> str:
    """Debian's `prometheus`, installed with apt-get when missing (CI runs as root)."""
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("prometheus is not installed and apt-get cannot install it here (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"prometheus could not be installed: {' '.join(argv)}: "
                        f"{done.stderr.strip()[-300:]}")
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("apt-get installed prometheus but no prometheus binary is on the PATH")
    return found


def free_block(size: int) -> int:
    """The first port of `size` consecutive free loopback ports (relays use base + index)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + size > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no block of free ports")


def loopback_targets(
    system: RunningSystem, relays: int, projectors: int, exporter: int
) -> dict[str, int]:
    """The compose `service` label of each scrape target -> its port on this machine."""
    env = system.env
    ports = {app: int(env[f"GATHERLY_{app.upper()}_PORT"]) for app in APPS}
    ports |= {f"relay-{schema}": relays + i for i, schema in enumerate(WRITERS)}
    ports |= {f"project-{name}": projectors + i for i, name in enumerate(PROJECTIONS)}
    settings = Settings(projector_metrics_port=projectors)
    ports |= {f"work-{name}": worker_metrics_port(settings, name) for name in WORKERS}
    ports["traefik"] = int(env["GATHERLY_TRAEFIK_ADMIN_PORT"])
    ports["nats-exporter"] = exporter
    return ports


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that takes every delivery."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def scrape_config_for(ports: dict[str, int]) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with compose host names swapped for loopback ports;
    targets this machine does not run (the collector) are left out."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = []
    for job in config["scrape_configs"]:
        statics = [
            {"targets": [f"127.0.0.1:{ports[static['labels']['service']]}"],
             "labels": static["labels"]}
            for static in job["static_configs"] if static["labels"]["service"] in ports
        ]
        if statics:
            jobs.append({**job, "static_configs": statics})
    config["scrape_configs"] = jobs
    return config


@pytest.fixture(scope="module")
def monitored_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """NATS with its monitoring port, and the exporter reading it: (client URL, exporter port)."""
    root = tmp_path_factory.mktemp("nats")
    nats_port = free_block(3)
    monitor, exporter = nats_port + 1, nats_port + 2
    nats = EmbeddedNats(root / "nats", nats_port, root / "nats.log", monitor_port=monitor)
    nats.start()
    metrics = subprocess.Popen(
        [sys.executable, "-m", "gatherly.nats_metrics",
         "--monitor-url", f"http://127.0.0.1:{monitor}", "--port", str(exporter)],
        stdout=(root / "nats-metrics.log").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        yield nats.url, exporter
    finally:
        metrics.terminate()
        metrics.wait(15)
        nats.stop()


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory, monitored_nats: tuple[str, int],
) -> Iterator[tuple[RunningSystem, str]]:
    binary = prometheus_binary()
    root = tmp_path_factory.mktemp("observability")
    relays = free_block(len(WRITERS))
    projectors = free_block(len(PROJECTIONS) + 1 + len(WORKERS))  # workers follow projections
    nats_url, exporter = monitored_nats
    system = RunningSystem(
        root / "gatherly",
        GATHERLY_NATS_URL=nats_url,
        GATHERLY_RELAY_METRICS_PORT=str(relays),
        GATHERLY_PROJECTOR_METRICS_PORT=str(projectors),
        GATHERLY_METRICS_SAMPLE_SECONDS="0.5",
        GATHERLY_ALLOW_HTTP_WEBHOOKS="true",
        GATHERLY_ALLOW_LOOPBACK_WEBHOOKS="true",
    )
    (root / "gatherly").mkdir()
    system.start()
    config = root / "prometheus.yml"
    targets = loopback_targets(system, relays, projectors, exporter)
    config.write_text(yaml.safe_dump(scrape_config_for(targets)))
    port = free_block(1)
    log = (root / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield system, f"http://127.0.0.1:{port}"
    finally:
        prometheus.terminate()
        prometheus.wait(15)
        assert system.stop() == 0, system.log_tail()


async def query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, (expr, response.text)
    return list(response.json()["data"]["result"])


async def total(client: httpx.AsyncClient, expr: str) -> float:
    return sum(float(series["value"][1]) for series in await query(client, expr))


async def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within}s")
        await asyncio.sleep(0.5)


async def subscribe(system: RunningSystem, community: str, url: str) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=15) as client:
        created = await client.post(f"/v1/communities/{community}/webhooks",
                                    json={"url": url, "event_types": ["gatherly.member.*"]})
        assert created.status_code == 201, created.text


async def exceed_a_key_rate(system: RunningSystem) -> None:
    """A community key allowed one request in a thousand seconds, asked until the edge says 429
    (a new key is known to the edge within its key cache refresh)."""
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=15) as client:
        made = await client.post("/v1/communities", json={"name": "Limited", "slug": "limited"})
        assert made.status_code == 201, made.text
        community = made.json()["id"]
        key = await client.post(f"/v1/communities/{community}/keys",
                                json={"scopes": ["read"], "rate_per_second": 0.001, "burst": 1})
        assert key.status_code == 201, key.text
        limited = {"Authorization": f"Bearer {key.json()['secret']}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            asked = await client.get(f"/v1/communities/{community}/kpis/members",
                                     headers=limited)
            if asked.status_code == 429:
                assert asked.headers["ratelimit-policy"].startswith('"per-key"')
                return
            assert asked.status_code in (200, 401), asked.text
            await asyncio.sleep(0.2)
        raise AssertionError("the key was never refused with 429")


async def drive_traffic(system: RunningSystem, community: str) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers=system.headers,
                                 timeout=15) as client:
        for _ in range(40):
            joined = await client.post(f"/v1/communities/{community}/members",
                                       json={"channel": "telegram"})
            assert joined.status_code == 201, joined.text
        refused = await client.post(f"/v1/communities/{community}/members", json={"x": 1})
        assert refused.status_code == 422
        assert (await client.get(f"/v1/communities/{community}/kpis/members")).status_code == 200


# Counters and gauges that must rise when writes flow through the whole pipeline.
MOVING = (
    "sum(gatherly_http_requests_total)",
    "sum(gatherly_relay_published_events_total)",
    'sum(gatherly_projection_messages_total{outcome="applied"})',
    "sum(gatherly_projection_batch_size_count)",
    "max(gatherly_projection_checkpoint_sequence)",
    "max(gatherly_stream_last_sequence)",
    "sum(traefik_entrypoint_requests_total)",
    'sum(gatherly_http_requests_total{service="edge",route="/auth"})',
    'sum(gatherly_webhook_deliveries_total{outcome="delivered"})',
    "sum(gatherly_webhook_attempts_total)",
    "sum(gatherly_rate_limited_requests_total)",
    'sum(gatherly_http_requests_total{service="edge",route="/auth",status="429"})',
    "max(gatherly_nats_stream_messages)",
    "sum(gatherly_nats_in_messages_total)",
)


async def test_dashboards_use_only_metrics_the_system_exposes_and_they_move(
    observed: tuple[RunningSystem, str], receiver: str,
) -> None:
    system, prometheus = observed
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:

        async def all_targets_up() -> bool:
            try:
                response = await client.get("/api/v1/targets")
            except httpx.TransportError:  # Prometheus is still starting
                return False
            targets = response.json()["data"]["activeTargets"] if response.is_success else []
            return bool(targets) and all(t["health"] == "up" for t in targets)

        await wait_for(all_targets_up, 60, "every scrape target up")
        await asyncio.sleep(2)
        await subscribe(system, "observed", receiver)
        before = {expr: await total(client, expr) for expr in MOVING}
        await drive_traffic(system, "observed")
        await exceed_a_key_rate(system)

        flat = list(MOVING)

        async def everything_moved() -> bool:
            flat[:] = [expr for expr in MOVING if await total(client, expr) <= before[expr]]
            return not flat

        try:
            await wait_for(everything_moved, 30, "every moving metric rising")
        except AssertionError as error:
            raise AssertionError(f"not rising with traffic: {flat}") from error
        names = set((await client.get("/api/v1/label/__name__/values")).json()["data"])
        for dashboard in DASHBOARDS:
            missing = dashboard_metrics(dashboard) - names
            assert not missing, f"{dashboard.name} queries metrics nobody exposes: {missing}"
        assert await query(client, "gatherly_relay_unpublished_events"), "relay lag not sampled"
        assert await query(client, "gatherly_projection_lag_messages"), "consumer lag not sampled"
        assert await total(client, "min(gatherly_nats_up)") == 1
        assert Receiver.received >= 1, "the receiver saw no delivery"
        async def refusal_counted() -> bool:  # it may land one scrape after the others
            refusals = 'sum(gatherly_http_requests_total{service="members",status="422"})'
            return await total(client, refusals) >= 1

        await wait_for(refusal_counted, 30, "the members 422 counted by status")
        for dashboard in DASHBOARDS:
            for expr in expressions(json.loads(dashboard.read_text())):
                await query(client, expr)  # every panel's query parses and evaluates
