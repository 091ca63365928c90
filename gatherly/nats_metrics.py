"""NATS server and JetStream metrics for Prometheus, read from the server's HTTP monitoring port.

Neither PyPI nor Debian packages NATS's own `prometheus-nats-exporter`, and the project installs
nothing from elsewhere, so this small exporter reads the two monitoring documents the dashboards
need and nothing more: `/varz` (connections, traffic, slow consumers, memory) and `/jsz` with
stream and consumer details (messages and bytes per stream, pending per consumer).

It is a collector, not a sampler: each Prometheus scrape reads the server once, so the numbers are
as fresh as the scrape and a server that does not answer shows as `gatherly_nats_up 0`.
One exporter per NATS server (a sidecar in a cluster); every series carries `server`, the
server's name. Run it with `python -m gatherly.nats_metrics --monitor-url URL --port PORT`.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

DEFAULT_PORT = 7479
JSZ_DETAILS = {"accounts": "true", "streams": "true", "consumers": "true"}
# /varz fields that only grow while the server runs -> (metric name, help).
SERVER_COUNTERS = {
    "in_msgs": ("gatherly_nats_in_messages", "Messages the server received"),
    "out_msgs": ("gatherly_nats_out_messages", "Messages the server sent"),
    "in_bytes": ("gatherly_nats_in_bytes", "Bytes the server received"),
    "out_bytes": ("gatherly_nats_out_bytes", "Bytes the server sent"),
    "slow_consumers": ("gatherly_nats_slow_consumers", "Clients cut off for reading too slowly"),
}
SERVER_GAUGES = {
    "connections": ("gatherly_nats_connections", "Client connections open now"),
    "subscriptions": ("gatherly_nats_subscriptions", "Subscriptions open now"),
    "mem": ("gatherly_nats_memory_bytes", "Resident memory of the server process"),
}


def server_metrics(varz: Mapping[str, Any]) -> Iterator[Metric]:
    server = str(varz.get("server_name", ""))
    for field, (name, documentation) in SERVER_COUNTERS.items():
        counter = CounterMetricFamily(name, documentation, labels=["server"])
        counter.add_metric([server], float(varz.get(field, 0)))
        yield counter
    for field, (name, documentation) in SERVER_GAUGES.items():
        gauge = GaugeMetricFamily(name, documentation, labels=["server"])
        gauge.add_metric([server], float(varz.get(field, 0)))
        yield gauge


def jetstream_metrics(server: str, jsz: Mapping[str, Any]) -> Iterator[Metric]:
    storage = GaugeMetricFamily("gatherly_nats_jetstream_storage_bytes",
                                "File storage JetStream uses on this server", labels=["server"])
    storage.add_metric([server], float(jsz.get("storage", 0)))
    yield storage
    by_stream = ["server", "stream"]
    messages = GaugeMetricFamily("gatherly_nats_stream_messages",
                                 "Messages the stream holds", labels=by_stream)
    size = GaugeMetricFamily("gatherly_nats_stream_bytes",
                             "Bytes the stream holds", labels=by_stream)
    by_consumer = ["server", "stream", "consumer"]
    pending = GaugeMetricFamily(
        "gatherly_nats_consumer_pending_messages",
        "Messages on the stream the consumer has not yet been sent", labels=by_consumer)
    unacked = GaugeMetricFamily(
        "gatherly_nats_consumer_ack_pending_messages",
        "Messages sent to the consumer and not yet acknowledged", labels=by_consumer)
    redelivered = GaugeMetricFamily(
        "gatherly_nats_consumer_redelivered_messages",
        "Messages sent to the consumer more than once and still unacknowledged",
        labels=by_consumer)
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            state = stream.get("state") or {}
            messages.add_metric([server, stream["name"]], float(state.get("messages", 0)))
            size.add_metric([server, stream["name"]], float(state.get("bytes", 0)))
            for consumer in stream.get("consumer_detail") or []:
                labels = [server, stream["name"], consumer["name"]]
                pending.add_metric(labels, float(consumer.get("num_pending", 0)))
                unacked.add_metric(labels, float(consumer.get("num_ack_pending", 0)))
                redelivered.add_metric(labels, float(consumer.get("num_redelivered", 0)))
    yield from (messages, size, pending, unacked, redelivered)


class NatsMonitorCollector(Collector):
    """Reads `/varz` and `/jsz` of one server at every scrape (from the scrape's own thread)."""

    def __init__(self, monitor_url: str, timeout: float = 2.0) -> None:
        self._client = httpx.Client(base_url=monitor_url.rstrip("/"), timeout=timeout,
                                    trust_env=False)
        self._lock = threading.Lock()  # httpx.Client is not shared across scrapes at once

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering must not read the server (it may not be up yet)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gatherly_nats_up", "1 when the NATS monitoring port answered")
        try:
            with self._lock:
                varz = self._get("/varz", {})
                jsz = self._get("/jsz", JSZ_DETAILS)
        except (httpx.HTTPError, ValueError) as error:
            log.warning("NATS monitoring unreadable: %s", error)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from server_metrics(varz)
        yield from jetstream_metrics(str(varz.get("server_name", "")), jsz)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._client.get(path, params=params)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gatherly.nats_metrics",
                                     description="Serve a NATS server's metrics to Prometheus.")
    parser.add_argument("--monitor-url", default="http://127.0.0.1:8222",
                        help="the NATS server's HTTP monitoring address")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve /metrics on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    REGISTRY.register(NatsMonitorCollector(args.monitor_url))
    server, thread = start_http_server(args.port, addr=args.host)
    log.info("NATS metrics of %s on %s:%d/metrics", args.monitor_url, args.host, args.port)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
