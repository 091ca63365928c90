"""The whole system started as a user starts it (`gatherly up`), for e2e tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from gatherly.registry import APPS

ADMIN_KEY = "gk_admin_system_tests"
PORT_SETTINGS = (
    "GATEWAY_PORT", "POSTGRES_PORT", "NATS_PORT", "NATS_MONITOR_PORT", "NATS_METRICS_PORT",
    "TRAEFIK_ADMIN_PORT",
    *(f"{app.upper()}_PORT" for app in APPS),
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class RunningSystem:
    def __init__(self, data_dir: Path, **extra_env: str) -> None:
        self.data_dir = data_dir
        ports = dict(zip(PORT_SETTINGS, free_ports(len(PORT_SETTINGS)), strict=True))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATHERLY_")},
            "GATHERLY_DATA_DIR": str(data_dir),
            "GATHERLY_ADMIN_KEY": ADMIN_KEY,
            **{f"GATHERLY_{name}": str(port) for name, port in ports.items()},
            **extra_env,
        }
        self.gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        self.postgres_url = f"postgresql://postgres@127.0.0.1:{ports['POSTGRES_PORT']}/gatherly"
        self.nats_url = f"nats://127.0.0.1:{ports['NATS_PORT']}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    def start(self, timeout: float = 120.0) -> None:
        log = (self.data_dir / "up.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gatherly.cli", "up"], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gatherly up exited:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gatherly up not ready in {timeout}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            response = httpx.get(f"{self.gateway}/v1/communities/probe/kpis/members",
                                 headers=self.headers, timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def pid(self, component: str) -> int:
        return int((self.data_dir / "run" / f"{component}.pid").read_text())

    def kill(self, component: str, sig: int = signal.SIGKILL) -> int:
        pid = self.pid(component)
        os.kill(pid, sig)
        return pid

    def wait_restarted(self, component: str, old_pid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.pid(component) != old_pid:
                    return
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{component} was not restarted:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise

    def __enter__(self) -> RunningSystem:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop it, and insist the stop was clean (exit 0: every child stopped in order)."""
        code = self.stop()
        assert code == 0, f"gatherly up exited {code}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 60) -> str:
        path = self.data_dir / "up.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _component(process: psutil.Process) -> str:
    """A process of `gatherly up` by what it runs (`serve members`, `project kpi`, `postgres`)."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "gone"
    if "gatherly.cli" in argv:
        return " ".join(argv[argv.index("gatherly.cli") + 1:][:2])
    # Postgres backends retitle themselves ("postgres: user db host state"): one label.
    return Path(argv[0].split(":")[0]).name if argv else process.name()


def cpu_by_component(root: int) -> dict[str, float]:
    """Seconds of CPU (user + system) so far, per component, over the process tree under `root`
    (`RunningSystem.process`): where a request's CPU goes across the system, not only in the
    service it names. A process that ended meanwhile is not counted."""
    totals: dict[str, float] = {}
    for process in psutil.Process(root).children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        label = _component(process)
        totals[label] = totals.get(label, 0.0) + times.user + times.system
    return totals
