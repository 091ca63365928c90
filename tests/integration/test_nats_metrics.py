"""The NATS exporter against a real nats-server: what /varz and /jsz say becomes series, and a
server that stops answering shows as down instead of failing the scrape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from prometheus_client import CollectorRegistry

from gatherly.local.nats import EmbeddedNats
from gatherly.nats_metrics import NatsMonitorCollector
from tests.conftest import free_port


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", free_port(), tmp_path / "nats.log",
                          sync_always=False, monitor_port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def scrape(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_streams_consumers_and_traffic_are_exported(monitored: EmbeddedNats) -> None:
    client = await nats.connect(monitored.url)
    js = client.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders.>"])
    for n in range(3):
        await js.publish("orders.placed", f"order {n}".encode())
    await js.pull_subscribe("orders.>", durable="billing")
    await client.close()
    registry = CollectorRegistry()
    registry.register(NatsMonitorCollector(f"http://127.0.0.1:{monitored.monitor_port}"))
    assert scrape(registry, "gatherly_nats_up") == 1
    stream = {"server": "gatherly-local", "stream": "ORDERS"}
    assert scrape(registry, "gatherly_nats_stream_messages", **stream) == 3
    assert (scrape(registry, "gatherly_nats_stream_bytes", **stream) or 0) > 0
    consumer = {**stream, "consumer": "billing"}
    assert scrape(registry, "gatherly_nats_consumer_pending_messages", **consumer) == 3
    assert scrape(registry, "gatherly_nats_consumer_ack_pending_messages", **consumer) == 0
    assert (scrape(registry, "gatherly_nats_in_messages_total", server="gatherly-local")
            or 0) >= 3


def test_a_server_that_does_not_answer_is_down_not_an_error(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(NatsMonitorCollector(f"http://127.0.0.1:{free_port()}", timeout=0.5))
    assert scrape(registry, "gatherly_nats_up") == 0
    assert scrape(registry, "gatherly_nats_connections", server="gatherly-local") is None
