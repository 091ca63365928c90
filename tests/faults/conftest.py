from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.system import RunningSystem


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = RunningSystem(tmp_path_factory.mktemp("gatherly"))
    running.start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log_tail()
