"""Child-process plumbing shared by the embedded servers and the supervisor (POSIX; Linux extras).

Every child runs in its own session, so a Ctrl-C in the terminal reaches only the supervisor, which
then stops the children in order. On Linux each child also asks the kernel for a signal when its
parent dies (PR_SET_PDEATHSIG), so even a `kill -9` of the supervisor leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

PR_SET_PDEATHSIG = 1
Proc = subprocess.Popen[bytes]

# Loopback probes must never go through an HTTP proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent: loading a library after fork() may deadlock."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


def _die_with_parent(death_signal: int) -> Callable[[], None]:
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec, after setuid
        if prctl is None:
            return
        prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return preexec


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> Proc:
    """Start `argv` with stdout and stderr appended to `log_path`; returns at once."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:  # drop root: the user's uid and primary group, no supplementary groups
        import pwd

        entry = pwd.getpwnam(user)
        uid, gid, groups = entry.pw_uid, entry.pw_gid, []
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        log.write(f"\n=== {stamp} starting: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(death_signal),
            user=uid,
            group=gid,
            extra_groups=groups,
        )


def signal_process(proc: Proc, sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def kill_group(proc: Proc) -> None:
    """SIGKILL the child and everything left in its process group (the child's own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    signal_process(proc, signal.SIGKILL)


def stop_process(proc: Proc, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Send `sig`, wait up to `timeout`, then SIGKILL the process group; returns the exit code."""
    signal_process(proc, sig)
    return wait_or_kill(proc, timeout)


def wait_or_kill(proc: Proc, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return proc.wait(10)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def port_open(host: str, port: int, timeout: float = 0.25) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class OwnedProcess:
    """A component's handle on the one process it started (none until it starts)."""

    _proc: Proc | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def kill(self) -> None:
        """SIGKILL, like a crash (fault tests); waits for the process to be gone."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


class NotReady(RuntimeError):
    """A child did not become ready; the message carries the tail of its log."""


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    proc: Proc | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> None:
    """Poll `ready` until it is true; fail early if `proc` exits, with the tail of its log."""
    deadline = time.monotonic() + timeout
    while True:
        problem = None
        if proc is not None and proc.poll() is not None:  # before ready(): a port may be taken
            problem = f"{what} exited with code {proc.returncode} before it was ready"
        elif ready():
            return
        elif time.monotonic() > deadline:
            problem = f"{what} was not ready after {timeout:.0f}s"
        if problem is not None:
            if log_path is not None:
                problem += f"\n--- last lines of {log_path} ---\n{tail(log_path)}"
            raise NotReady(problem)
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def write_pid_file(path: Path, pid: int | None) -> None:
    if pid is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{pid}\n")
    temporary.replace(path)
