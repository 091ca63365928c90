"""`gatherly up` the way a user runs it: every process started, Traefik in front, crashes
healed by the supervisor, and a SIGTERM that stops everything and leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PORTS = ["postgres", "nats", "nats_monitor", "nats_metrics", "gateway", "members", "kpi", "edge",
         "traefik_admin"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def pid_files(run_dir: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text()) for path in run_dir.glob("*.pid")}


def answers(
    client: httpx.Client, url: str, status: int, headers: dict[str, str]
) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return client.get(url, headers=headers).status_code == status
        except httpx.HTTPError:
            return False

    return check


def restarted(run_dir: Path, name: str, old_pid: int) -> Callable[[], bool]:
    return lambda: pid_files(run_dir).get(name) not in (None, old_pid)


def launch(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, int], Path]:
    """`gatherly up` on free ports and a fresh data directory; returns once it says it is up."""
    ports = {name: free_port() for name in PORTS}
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATHERLY_")}
    env.update({f"GATHERLY_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["GATHERLY_DATA_DIR"] = str(data_dir)
    output = tmp_path / "up.out"
    with output.open("wb") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "gatherly.cli", "up"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while b"Gatherly is up." not in output.read_bytes():
        if up.poll() is not None or time.monotonic() > deadline:
            up.kill()
            up.wait()
            raise AssertionError(f"gatherly up did not come up:\n{output.read_text()}")
        time.sleep(0.2)
    return up, ports, data_dir


def everything_started_by(up: subprocess.Popen[bytes], run_dir: Path) -> set[int]:
    pids = set(pid_files(run_dir).values())
    pids.update(child.pid for child in psutil.Process(up.pid).children(recursive=True))
    pids.discard(up.pid)
    return pids


def clean_up(up: subprocess.Popen[bytes], pids: set[int]) -> None:
    if up.poll() is None:
        up.kill()
        up.wait()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_gatherly_up_serves_through_the_gateway_heals_and_stops_cleanly(tmp_path: Path) -> None:
    up, ports, data_dir = launch(tmp_path)
    run_dir = data_dir / "run"
    started: set[int] = set()
    try:
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        members = f"{gateway}/v1/communities/c1/members"
        key = (data_dir / "admin_key").read_text().strip()
        assert key.startswith("gk_admin_")
        operator = {"Authorization": f"Bearer {key}"}
        with httpx.Client(trust_env=False, timeout=10) as client:
            anonymous = client.get(members)
            assert anonymous.status_code == 401, anonymous.text
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            assert anonymous.json()["status"] == 401

            forged = {"X-Gatherly-Community": "c1", "X-Gatherly-Scopes": "read,write,admin"}
            assert client.get(members, headers=forged).status_code == 401

            assert client.get(members, headers=operator).status_code == 200
            unrouted = client.get(f"{gateway}/v1/nowhere", headers=operator)
            assert unrouted.status_code == 404
            assert unrouted.headers["content-type"] == "application/problem+json"
            admin = f"http://127.0.0.1:{ports['traefik_admin']}"
            assert client.get(f"{admin}/ping").status_code == 200
            assert "traefik_" in client.get(f"{admin}/metrics").text
            # The embedded NATS's monitoring, read by its exporter for Prometheus.
            exporter = f"http://127.0.0.1:{ports['nats_metrics']}/metrics"
            assert "gatherly_nats_up 1.0" in client.get(exporter).text

            # The supervisor brings back what dies, and rewrites the pid file.
            before = pid_files(run_dir)
            assert set(before) >= {"gatherly", "postgres", "nats", "traefik", "members", "kpi"}
            assert set(before) >= {"edge", "relay-members", "project-kpi", "nats-metrics"}
            for name in ("members", "postgres"):
                os.kill(before[name], signal.SIGKILL)
            for name in ("members", "postgres"):
                eventually(restarted(run_dir, name, before[name]), f"{name} restarted")
            eventually(answers(client, members, 200, headers=operator), "members answers again")

        started = everything_started_by(up, run_dir)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0, (tmp_path / "up.out").read_text()
        eventually(lambda: not [pid for pid in started if alive(pid)], "no process left", 15)
        assert not list(run_dir.glob("*.pid"))
    finally:
        clean_up(up, started)


def test_killing_the_supervisor_takes_every_child_down(tmp_path: Path) -> None:
    up, _, data_dir = launch(tmp_path)
    started = everything_started_by(up, data_dir / "run")
    try:
        up.kill()  # SIGKILL: no chance to stop anything; the children's death signal does it
        up.wait()
        eventually(lambda: not [pid for pid in started if alive(pid)], "no orphan left", 30)
    finally:
        clean_up(up, started)
