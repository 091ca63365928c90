"""docker-compose.yml cannot run here (no Docker engine), so it is checked statically: every
process the registry names runs, every command is one `gatherly` accepts, every GATHERLY_*
variable is one the code reads, and every port agrees with Settings and the scrape config."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gatherly import nats_metrics
from gatherly.cli import build_parser
from gatherly.metrics import projector_metrics_port, relay_metrics_port, worker_metrics_port
from gatherly.registry import APPS, PROJECTIONS, WORKERS, WRITERS
from gatherly.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
IMAGE = {name: s for name, s in SERVICES.items() if s.get("image") == "gatherly:latest"}
# The image's own entry point (`gatherly`); the NATS exporter runs another module of the image.
GATHERLY = {name: s for name, s in IMAGE.items() if "entrypoint" not in s}
EXPORTER = SERVICES["nats-exporter"]
DYNAMIC_VARIABLES = set(
    re.findall(r'env "([A-Z_]+)"', (ROOT / "gateway/traefik/dynamic.yml").read_text())
)


def settings_of(service: dict[str, Any]) -> Settings:
    """The Settings a container would read from the environment compose gives it."""
    env = {k[len("GATHERLY_"):].lower(): v for k, v in service.get("environment", {}).items()
           if k.startswith("GATHERLY_") and k != "GATHERLY_ADMIN_KEY"}
    return Settings(**env)


def expected_port(name: str) -> int:
    """Where a compose service listens, by Settings (apps, relays, the projector)."""
    service = SERVICES[name]
    settings = settings_of(service)
    kind, *rest = service["command"]
    if kind == "serve":
        return int(getattr(settings, APPS[rest[0]][1]))
    if kind == "relay":
        return relay_metrics_port(settings, rest[0])
    if kind == "project":
        return projector_metrics_port(settings, rest[0])
    if kind == "work":
        return worker_metrics_port(settings, rest[0])
    raise AssertionError(f"{name} listens nowhere")


def test_every_app_relay_and_projection_of_the_registry_runs() -> None:
    commands = {tuple(s["command"]) for s in GATHERLY.values()}
    assert {("serve", app) for app in APPS} <= commands
    assert {("relay", schema) for schema in WRITERS} <= commands
    assert {("project", name) for name in PROJECTIONS} <= commands
    assert {("work", name) for name in WORKERS} <= commands
    assert ("migrate",) in commands


@pytest.mark.parametrize("name", sorted(GATHERLY))
def test_each_command_is_one_gatherly_accepts(name: str) -> None:
    build_parser().parse_args(GATHERLY[name]["command"])  # exits (fails) on an unknown one


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_gatherly_variable_is_one_the_code_reads(name: str) -> None:
    fields = {f"GATHERLY_{field.upper()}" for field in Settings.model_fields}
    for variable in SERVICES[name].get("environment", {}):
        if variable.startswith("GATHERLY_"):
            assert variable in fields | DYNAMIC_VARIABLES, f"{name} sets {variable}"


def test_every_healthcheck_asks_the_port_settings_give_the_process() -> None:
    for name, service in GATHERLY.items():
        if service["command"][0] in ("migrate", "work"):  # no endpoint to ask
            continue
        probe = " ".join(service["healthcheck"]["test"])
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", probe).group(1))  # type: ignore[union-attr]
        assert port == expected_port(name), name


def test_traefik_reaches_each_app_where_it_listens() -> None:
    environment = SERVICES["traefik"]["environment"]
    for app in APPS:
        url = urlsplit(environment[f"GATHERLY_{app.upper()}_URL"])
        assert url.hostname in SERVICES, app
        assert url.port == expected_port(str(url.hostname)), app


def test_prometheus_scrapes_every_metrics_endpoint_at_its_port() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in SERVICES, target
                assert static["labels"]["service"] == host, target
                scraped[host] = int(port)
    for name, service in GATHERLY.items():
        if service["command"] != ["migrate"]:
            assert scraped.get(name) == expected_port(name), name
    assert scraped["nats-exporter"] == nats_metrics.build_parser().parse_args(
        EXPORTER["command"]).port
    admin = re.search(r"admin:\s*\n\s*address: \":(\d+)\"",
                      (ROOT / "deploy/traefik/traefik.yml").read_text())
    assert admin is not None and scraped["traefik"] == int(admin.group(1))


def test_start_order_waits_for_health_and_migrations() -> None:
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
    for name, service in GATHERLY.items():
        if name == "migrate":
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["nats"]["condition"] == "service_healthy"
        assert "healthcheck" in service or service["command"][0] == "work", name
    for name in ("postgres", "nats", "traefik"):
        assert "healthcheck" in SERVICES[name], name


def test_nats_fsyncs_every_write() -> None:
    for config in ("nats.conf", "cluster.conf"):
        assert "sync_interval: always" in (ROOT / "deploy/nats" / config).read_text()


def test_the_container_gateway_matches_the_local_one() -> None:
    """deploy/traefik/traefik.yml is gateway/traefik/traefik.yml with container addresses."""
    local_template = (ROOT / "gateway/traefik/traefik.yml").read_text()
    local = yaml.safe_load(string.Template(local_template).substitute(
        GATEWAY_ADDRESS=":80", ADMIN_ADDRESS=":7489", DYNAMIC_CONFIG="/etc/traefik/dynamic.yml",
        ACCESS_LOG="/dev/stdout", TRACING=""))
    container = yaml.safe_load((ROOT / "deploy/traefik/traefik.yml").read_text())
    for key in ("entryPoints", "ping", "metrics", "api"):
        assert container[key] == local[key], key
    assert container["providers"] == local["providers"]


def test_the_image_runs_gatherly_and_exposes_every_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["gatherly"]' in dockerfile
    exposed = {int(p) for line in dockerfile.splitlines() if line.startswith("EXPOSE")
               for p in line.split()[1:]}
    for name, service in GATHERLY.items():
        if service["command"][0] not in ("migrate", "work"):
            assert expected_port(name) in exposed, name


def test_the_nats_exporter_reads_the_monitoring_port_nats_opens() -> None:
    args = nats_metrics.build_parser().parse_args(EXPORTER["command"])
    assert EXPORTER["entrypoint"] == ["python", "-m", "gatherly.nats_metrics"]
    monitor = re.search(r"^http: [\d.]+:(\d+)$", (ROOT / "deploy/nats/nats.conf").read_text(), re.M)
    assert monitor is not None
    url = urlsplit(args.monitor_url)
    assert (url.hostname, url.port) == ("nats", int(monitor.group(1)))
    assert f"127.0.0.1:{args.port}/metrics" in " ".join(EXPORTER["healthcheck"]["test"])
    assert EXPORTER["depends_on"]["nats"]["condition"] == "service_healthy"


def test_the_deployed_nats_stores_a_relay_batch_with_one_fsync() -> None:
    """JetStream atomic batches (ADR 0002) need NATS >= 2.12; an older server makes the relay
    publish one message, and one fsync, at a time."""
    k8s = (ROOT / "deploy/k8s/nats.yaml").read_text()
    for image in (SERVICES["nats"]["image"], *re.findall(r"image: (nats:\S+)", k8s)):
        version = re.match(r"nats:(\d+)\.(\d+)", image)
        assert version is not None, image
        assert tuple(map(int, version.groups())) >= (2, 12), image
