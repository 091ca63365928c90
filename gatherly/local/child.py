"""One Gatherly process (`python -m gatherly.cli ...`) under the supervisor."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

from gatherly.local.process import (
    OwnedProcess,
    Proc,
    http_ok,
    signal_process,
    spawn,
    wait_or_kill,
    wait_until,
)


class Child(OwnedProcess):
    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        health_url: str | None = None,
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "gatherly.cli", *args]
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.health_url = health_url
        self._proc: Proc | None = None

    def spawn(self) -> None:
        """Start the process and return at once."""
        if not self.running:
            self._proc = spawn(self.argv, self.log_path, env=self.env)

    def wait_ready(
        self, timeout: float = 60.0, cancelled: Callable[[], bool] = lambda: False
    ) -> None:
        """Until `GET /healthz` answers 2xx (HTTP apps; workers need only be alive), or until
        `cancelled()` is true."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        url = self.health_url
        wait_until(
            lambda: cancelled() or url is None or http_ok(url),
            what=self.name,
            proc=self._proc,
            log_path=self.log_path,
            timeout=timeout,
        )

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def terminate(self) -> None:
        if self._proc is not None:
            signal_process(self._proc, signal.SIGTERM)

    def wait_stopped(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            wait_or_kill(self._proc, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait_stopped(timeout)
