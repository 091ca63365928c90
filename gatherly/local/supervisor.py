"""`gatherly up`: the whole system on one machine, supervised, stopped cleanly by Ctrl-C.

Start order: embedded PostgreSQL and NATS (unless GATHERLY_DATABASE_URL / GATHERLY_NATS_URL name
external ones), migrations, the HTTP apps, the relay and the projector, then Traefik. Any process
that dies is restarted with a backoff (0.5 s doubling to 5 s); `<data_dir>/run/<name>.pid` always
holds the current pid. SIGINT, SIGTERM or SIGHUP stops everything in reverse order and returns 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from gatherly.local.child import Child
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.local.preflight import admin_key_of, check_ports, claim_data_dir
from gatherly.local.process import NotReady, spawn, stop_process, tail, write_pid_file
from gatherly.local.traefik import Traefik, loopback, service_urls
from gatherly.registry import APPS, PROJECTIONS, SCHEMAS, WRITERS
from gatherly.registry import WORKERS as OTHER_WORKERS
from gatherly.settings import EMBEDDED_DATABASE, Settings

log = logging.getLogger("gatherly.up")

FIRST_DELAY, MAX_DELAY, STABLE_AFTER = 0.5, 5.0, 30.0
HTTP_APPS = tuple(APPS)
WORKERS = {
    **{f"relay-{schema}": ["relay", schema] for schema in WRITERS},
    **{f"project-{name}": ["project", name] for name in PROJECTIONS},
    **{f"work-{name}": ["work", name] for name in OTHER_WORKERS},
}
PORTS = ("postgres", "nats", "nats_monitor", "nats_metrics", "gateway", "traefik_admin", *HTTP_APPS)


class Component(Protocol):
    @property
    def pid(self) -> int | None: ...
    @property
    def running(self) -> bool: ...
    @property
    def returncode(self) -> int | None: ...
    def stop(self, timeout: float = ...) -> None: ...


@dataclass
class Unit:
    name: str
    component: Component
    stage: int  # shutdown stage: lower stops first
    restart: Callable[[], None]
    delay: float = FIRST_DELAY
    due: float | None = None
    started: float = 0.0


class Stopped(Exception):
    """SIGINT or SIGTERM arrived while the system was starting."""


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.absolute()
        self.log_dir = self.data_dir / "logs"
        self.run_dir = self.data_dir / "run"
        self.units: list[Unit] = []
        self.stopping = False
        self.claimed = False  # this process wrote run/gatherly.pid

    # --- lifecycle ---

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # HUP: terminal closed
            signal.signal(signum, self._on_signal)
        code = 0
        try:
            self._boot()
        except Stopped:
            log.info("stop requested while starting")
        except (NotReady, RuntimeError, OSError) as error:
            log.error("gatherly up failed: %s", error)
            code = 1
        except Exception:
            log.exception("gatherly up failed")
            code = 1
        else:
            self._supervise()
        self._shutdown()
        return code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True

    def _checkpoint(self) -> None:
        if self.stopping:
            raise Stopped

    def _boot(self) -> None:
        settings = self.settings
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.claimed = claim_data_dir(self.run_dir)
        check_ports(settings, PORTS)
        admin_key, key_source = admin_key_of(settings, self.data_dir)
        env = self._child_env(admin_key)
        if settings.uses_embedded_postgres:
            pg = EmbeddedPostgres(
                self.data_dir / "postgres", settings.postgres_port, self.log_dir / "postgres.log"
            )
            self._add("postgres", pg, 4, pg.start)
            pg.ensure_database(EMBEDDED_DATABASE)
            env["GATHERLY_DATABASE_URL"] = pg.url(EMBEDDED_DATABASE)
            self._checkpoint()
        if settings.uses_embedded_nats:
            nats = EmbeddedNats(
                self.data_dir / "nats",
                settings.nats_port,
                self.log_dir / "nats.log",
                settings.nats_sync_always,
                monitor_port=settings.nats_monitor_port,
            )
            self._add("nats", nats, 3, nats.start)
            env["GATHERLY_NATS_URL"] = nats.url
            self._checkpoint()
        self._migrate(env)
        self._checkpoint()
        host = loopback(settings.host)
        children: list[Child] = []
        for name in HTTP_APPS:
            port = getattr(settings, f"{name}_port")
            child = Child(name, ["serve", name], env, self.log_dir, f"http://{host}:{port}/healthz")
            children.append(child)
            self._add(name, child, 1, child.spawn)
        workers = dict(WORKERS)
        exported = settings.nats_monitor_port and settings.nats_metrics_port  # 0 turns off
        if settings.uses_embedded_nats and exported:
            workers["nats-metrics"] = ["nats-metrics"]  # the embedded NATS's exporter
        for name, args in workers.items():
            child = Child(name, args, env, self.log_dir)
            children.append(child)
            self._add(name, child, 2, child.spawn)
        time.sleep(1.0)  # a worker that dies at once is a bug to report, not to restart
        for child in children:
            child.wait_ready(cancelled=lambda: self.stopping)
            self._checkpoint()
        traefik = Traefik(settings, self.log_dir, env)
        self._add("traefik", traefik, 0, traefik.start)
        self._banner(traefik, env, key_source)

    def _add(self, name: str, component: Component, stage: int, start: Callable[[], None]) -> None:
        """Start a component; after a crash the same `start` brings it back."""
        unit = Unit(name, component, stage, start)
        self.units.append(unit)  # before start(): a half-started unit is stopped too
        log.info("starting %s", name)
        start()
        unit.started = time.monotonic()
        write_pid_file(self.run_dir / f"{name}.pid", component.pid)

    def _supervise(self) -> None:
        while not self.stopping:
            for unit in self.units:
                if self.stopping:
                    break
                self._tend(unit)
            time.sleep(0.1)

    def _tend(self, unit: Unit) -> None:
        now = time.monotonic()
        if unit.component.running:
            if now - unit.started > STABLE_AFTER:
                unit.delay = FIRST_DELAY
            return
        if unit.due is None:
            log.warning(
                "%s exited unexpectedly (code %s), restarting in %.1fs; see %s",
                unit.name,
                unit.component.returncode,
                unit.delay,
                self.log_dir / f"{unit.name}.log",
            )
            unit.due, unit.delay = now + unit.delay, min(unit.delay * 2, MAX_DELAY)
        elif now >= unit.due:
            unit.due = None
            try:
                unit.restart()
            except (NotReady, RuntimeError, OSError) as error:
                log.error("restarting %s failed: %s", unit.name, error)
                return
            unit.started = time.monotonic()
            write_pid_file(self.run_dir / f"{unit.name}.pid", unit.component.pid)
            log.info("%s restarted (pid %s)", unit.name, unit.component.pid)

    def _shutdown(self) -> None:
        for stage in sorted({unit.stage for unit in self.units}):
            units = [unit for unit in self.units if unit.stage == stage]
            for unit in units:  # signal a whole stage at once, then wait for it
                if isinstance(unit.component, Child):
                    unit.component.terminate()
            for unit in units:
                log.info("stopping %s", unit.name)
                try:
                    unit.component.stop(15.0)
                except Exception:
                    log.exception("stopping %s failed", unit.name)
                (self.run_dir / f"{unit.name}.pid").unlink(missing_ok=True)
        if self.claimed:
            (self.run_dir / "gatherly.pid").unlink(missing_ok=True)
        log.info("stopped")

    # --- pieces ---

    def _child_env(self, admin_key: str) -> dict[str, str]:
        env = {**os.environ, **service_urls(self.settings)}
        for name in PORTS:
            env[f"GATHERLY_{name.upper()}_PORT"] = str(getattr(self.settings, f"{name}_port"))
        env["GATHERLY_ADMIN_KEY"] = admin_key
        env["GATHERLY_DATA_DIR"] = str(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _migrate(self, env: dict[str, str]) -> None:
        log.info("migrating")
        log_path = self.log_dir / "migrate.log"
        # Schemas named explicitly: on Python 3.11 argparse rejects an empty `nargs="*"` list
        # that has `choices` (bpo-9625), so a bare `gatherly migrate` fails there.
        # --stream: the stream gets its partitions before any relay can create it without.
        argv = [sys.executable, "-m", "gatherly.cli", "migrate", "--stream", *SCHEMAS]
        proc = spawn(argv, log_path, env=env)
        deadline = time.monotonic() + 600
        while proc.poll() is None:
            if self.stopping or time.monotonic() > deadline:
                stop_process(proc)
                self._checkpoint()
                raise RuntimeError(f"migrations took more than 10 minutes; see {log_path}")
            time.sleep(0.1)
        if proc.returncode != 0:
            raise RuntimeError(
                f"migrations failed (exit code {proc.returncode}); last lines of {log_path}:\n"
                f"{tail(log_path)}"
            )

    def _where(self, name: str, url: str) -> str:
        """Embedded servers by URL; external ones only by name (their URL may hold a secret)."""
        if any(unit.name == name for unit in self.units):
            return url
        return f"external, from GATHERLY_{'DATABASE' if name == 'postgres' else 'NATS'}_URL"

    def _banner(self, traefik: Traefik, env: dict[str, str], key_source: str) -> None:
        lines = [
            "",
            "Gatherly is up.",
            f"  gateway    {traefik.url}/v1/communities/<community_id>/members",
            f"  admin      {traefik.admin_url}/dashboard/  (also /ping, /metrics)",
            f"  postgres   {self._where('postgres', env['GATHERLY_DATABASE_URL'])}",
            f"  nats       {self._where('nats', env['GATHERLY_NATS_URL'])}",
            f"  logs       {self.log_dir}",
            f"  admin key  {key_source}  (send it as: Authorization: Bearer <key>)",
            "Ctrl-C stops everything.",
            "",
        ]
        print("\n".join(lines), flush=True)


def run_system(settings: Settings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(log_dir / "supervisor.log"),
    ]
    formatter = logging.Formatter("%(asctime)s gatherly up: %(message)s", "%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return Supervisor(settings).run()
