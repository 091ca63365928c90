"""Shared fixtures: one real PostgreSQL and one real NATS (JetStream) per test session, started
from the embedded wheels on free loopback ports; a fresh database and stream for every test."""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.system import RunningSystem
from gatherly.bus import Bus
from gatherly.local.nats import EmbeddedNats
from gatherly.local.postgres import EmbeddedPostgres
from gatherly.migrate import migrate
from gatherly.registry import SCHEMAS
from gatherly.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OWN_BASETEMP = pytest.StashKey[Path]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A session's temporary files in a directory of its own, not under pytest's shared
    `pytest-of-<user>`: as root, the embedded Postgres runs as another user who must traverse
    every ancestor of its data directory, and each pytest session that starts resets that shared
    directory to 0700, locking out a Postgres another session is just starting there."""
    if config.option.basetemp is None:
        own = Path(tempfile.mkdtemp(prefix="gatherly-pytest-"))
        config.option.basetemp = own
        config.stash[OWN_BASETEMP] = own


@pytest.hookimpl(trylast=True)  # after the session's fixtures have stopped their servers
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Kept for a look when something failed, as pytest keeps its own; removed otherwise."""
    own = session.config.stash.get(OWN_BASETEMP, None)
    if own is not None and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    root = tmp_path_factory.mktemp("postgres")
    server = EmbeddedPostgres(root / "data", free_port(), root / "postgres.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    root = tmp_path_factory.mktemp("nats")
    server = EmbeddedNats(root / "data", free_port(), root / "nats.log")
    server.start()
    yield server
    server.stop()


MIGRATED = "t_migrated"


@pytest.fixture(scope="session")
def migrated_template(postgres_server: EmbeddedPostgres) -> str:
    """A database with every schema migrated, once a session: a test's database is a copy of
    it (a third of a second) rather than a run of every migration (two seconds and more)."""
    postgres_server.ensure_database(MIGRATED)
    for schema, package in SCHEMAS.items():
        migrate(Settings(database_url=postgres_server.url(MIGRATED)).database, schema, package)
    return MIGRATED


async def fresh_database(server: EmbeddedPostgres, template: str = "template1") -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server.url("postgres"))
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await conn.close()
    return server.url(name)


@pytest.fixture
async def settings(
    postgres_server: EmbeddedPostgres, nats_server: EmbeddedNats, tmp_path: Path,
    migrated_template: str,
) -> AsyncIterator[Settings]:
    """Settings for one test: its own database (migrated) and an empty stream."""
    url = await fresh_database(postgres_server, migrated_template)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        nats_url=nats_server.url,
        stream_name=f"T{uuid.uuid4().hex[:12].upper()}",
        relay_poll_seconds=0.05,
        projection_ack_wait_seconds=2.0,
    )
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="test")
    await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
    try:
        yield settings
    finally:
        await bus.delete_stream()
        await bus.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """The whole system, started as a user starts it (`gatherly up`), for one test module."""
    with RunningSystem(tmp_path_factory.mktemp("gatherly")) as running:
        yield running
