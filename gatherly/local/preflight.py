"""What `gatherly up` settles before it starts anything: the data directory, ports, the key."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from gatherly.local.process import port_open, write_pid_file
from gatherly.local.traefik import loopback
from gatherly.settings import Settings


def claim_data_dir(run_dir: Path) -> bool:
    """One `gatherly up` per data directory: a second one would fight over every port."""
    pid_file = run_dir / "gatherly.pid"
    try:
        other = int(pid_file.read_text())
        alive = b"gatherly" in Path(f"/proc/{other}/cmdline").read_bytes()
    except (OSError, ValueError):
        other, alive = 0, False
    if alive and other != os.getpid():
        raise RuntimeError(f"gatherly up already runs on {run_dir.parent} (pid {other})")
    write_pid_file(pid_file, os.getpid())
    return True


def check_ports(settings: Settings, names: Iterable[str]) -> None:
    """Fail with the setting to change, rather than with a bind error deep in some log."""
    host = loopback(settings.host)
    for name in names:
        if name == "postgres" and not settings.uses_embedded_postgres:
            continue
        if name.startswith("nats") and not settings.uses_embedded_nats:
            continue
        port = getattr(settings, f"{name}_port")
        if not port:  # turned off
            continue
        if port_open(host, port):
            raise RuntimeError(
                f"port {port} is taken; set GATHERLY_{name.upper()}_PORT to a free port"
            )


def admin_key_of(settings: Settings, data_dir: Path) -> tuple[str, str]:
    """The operator key, and where it comes from; generated once and kept in the data dir."""
    if settings.admin_key is not None and settings.admin_key.get_secret_value():
        return settings.admin_key.get_secret_value(), "from GATHERLY_ADMIN_KEY"
    path = data_dir / "admin_key"
    if path.exists() and (key := path.read_text().strip()):
        return key, f"in {path}"
    key = "gk_admin_" + secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    path.chmod(0o600)
    print(f"Generated the operator API key (kept in {path}, mode 0600):\n  {key}", flush=True)
    return key, f"in {path} (generated now)"
