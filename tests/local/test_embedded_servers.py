"""The embedded PostgreSQL and NATS: real servers, real clients, crash (kill -9) and restart."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest

from gatherly.local.nats import EmbeddedNats, render_config
from gatherly.local.postgres import EmbeddedPostgres


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gone(pids: list[int]) -> bool:
    """True when none of `pids` runs any more (a zombie waiting to be reaped counts as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def tree(pid: int | None) -> list[int]:
    assert pid is not None
    process = psutil.Process(pid)
    return [pid, *(child.pid for child in process.children(recursive=True))]


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg", free_port(), tmp_path / "logs" / "postgres.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", free_port(), tmp_path / "logs" / "nats.log")
    try:
        yield server
    finally:
        server.stop()


async def write_and_count(url: str, value: str | None) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS facts (value text NOT NULL)")
        if value is not None:
            await conn.execute("INSERT INTO facts VALUES ($1)", value)
        return int(await conn.fetchval("SELECT count(*) FROM facts"))
    finally:
        await conn.close()


def test_postgres_serves_survives_kill_9_and_stops_cleanly(postgres: EmbeddedPostgres) -> None:
    postgres.start()
    assert postgres.running
    postgres.ensure_database("gatherly")
    postgres.ensure_database("gatherly")  # idempotent
    url = postgres.url("gatherly")
    assert url == f"postgresql://postgres@127.0.0.1:{postgres.port}/gatherly"
    assert asyncio.run(write_and_count(url, "joined")) == 1

    first = postgres.pid
    postgres.kill()
    assert not postgres.running
    assert (postgres.data_dir / "postmaster.pid").exists()  # stale, as after a crash

    postgres.start()
    assert postgres.pid != first
    assert asyncio.run(write_and_count(url, None)) == 1  # the committed row survived
    assert postgres.query("SHOW max_connections") == "200"
    assert postgres.query("SHOW fsync") == "on"

    pids = tree(postgres.pid)
    postgres.stop()
    assert not postgres.running
    assert gone(pids)


def test_postgres_starts_when_a_stale_pid_file_names_a_live_process(
    postgres: EmbeddedPostgres,
) -> None:
    postgres.start()
    postgres.kill()
    stranger = subprocess.Popen(["sleep", "60"])  # the crashed postmaster's pid, reused
    try:
        pid_file = postgres.data_dir / "postmaster.pid"
        lines = pid_file.read_text().splitlines()
        pid_file.write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")
        postgres.start()
        assert postgres.query("SELECT 1") == "1"
        assert stranger.poll() is None  # left alone
    finally:
        stranger.kill()
        stranger.wait()


async def jetstream_roundtrip(url: str, publish: bool) -> tuple[int, int]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.account_info()
        if publish:
            await js.add_stream(name="PROBE", subjects=["probe.>"])
            await js.publish("probe.one", b"fact")
        state = (await js.stream_info("PROBE")).state
        return info.streams, state.messages
    finally:
        await client.close()


def test_nats_serves_jetstream_survives_kill_9_and_stops_cleanly(
    nats_server: EmbeddedNats,
) -> None:
    nats_server.start()
    assert nats_server.running
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert "sync_interval: always" in nats_server.config_path.read_text()
    assert asyncio.run(jetstream_roundtrip(nats_server.url, publish=True)) == (0, 1)

    first = nats_server.pid
    nats_server.kill()
    assert not nats_server.running
    nats_server.start()
    assert nats_server.pid != first
    assert asyncio.run(jetstream_roundtrip(nats_server.url, publish=False)) == (1, 1)

    pids = tree(nats_server.pid)
    nats_server.stop()
    assert not nats_server.running
    assert gone(pids)


def test_nats_config_leaves_the_default_sync_when_asked(tmp_path: Path) -> None:
    assert "sync_interval" not in render_config("127.0.0.1", 1, tmp_path, sync_always=False)
    assert "sync_interval: always" in render_config("127.0.0.1", 1, tmp_path, sync_always=True)
