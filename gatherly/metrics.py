"""Prometheus metrics of every Gatherly process, and where each process serves them.

HTTP apps serve `/metrics` on their own port (installed by `gatherly.web.install_service_basics`).
The relay and the projector have no HTTP app: each serves `/metrics` from a small thread on a port
of its own, `relay_metrics_port + i` for the i-th writer of `gatherly.registry.WRITERS` and
`projector_metrics_port + i` for the i-th projection of `PROJECTIONS`; worker i of `WORKERS` (the
webhook sender) on `projector_metrics_port + len(PROJECTIONS) + 1 + i`. NATS's own metrics come from
`gatherly.nats_metrics`, an exporter beside each NATS server.

Hot paths touch only pre-labelled children (`.labels()` once, in a constructor) or one label
lookup per HTTP request; the lags that need a query are sampled on a timer, never per event.
Metric names are the contract of `deploy/grafana/dashboards/*.json`; README "Operating it" says
what each one means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatherly.registry import PROJECTIONS, WORKERS, WRITERS
from gatherly.settings import Settings

log = logging.getLogger(__name__)

# Latency buckets from 2.5 ms to 10 s: the KPI freshness target is one second at p99.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
UNMATCHED_ROUTE = "unmatched"
UNMEASURED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

HTTP_REQUESTS = Counter(
    "gatherly_http_requests",
    "HTTP requests answered, by route template and status code",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "gatherly_http_request_duration_seconds",
    "Time from request to the end of the response, by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

RELAY_PUBLISHED = Counter(
    "gatherly_relay_published_events", "Events the stream acknowledged", ["schema"]
)
RELAY_UNPUBLISHED = Gauge(
    "gatherly_relay_unpublished_events",
    "Events committed in the store but not yet acknowledged by the stream (relay lag)",
    ["schema"],
)
RELAY_DELAY = Histogram(
    "gatherly_relay_publish_delay_seconds",
    "Commit to stream acknowledgement, for the oldest event of each published batch",
    ["schema"],
    buckets=LATENCY_BUCKETS,
)
RELAY_LEADER = Gauge(
    "gatherly_relay_leader", "1 while this relay holds its database's leader lock", ["schema"]
)

PROJECTION_MESSAGES = Counter(
    "gatherly_projection_messages",
    "Messages settled by a projection: applied, duplicate (skipped), deferred or poison",
    ["projection", "outcome"],
)
PROJECTION_BATCH_SIZE = Histogram(
    "gatherly_projection_batch_size",
    "Messages per batch applied in one transaction",
    ["projection"],
    buckets=BATCH_BUCKETS,
)
PROJECTION_BATCH_DURATION = Histogram(
    "gatherly_projection_batch_duration_seconds",
    "Time to apply one batch and commit it with its checkpoint",
    ["projection"],
    buckets=LATENCY_BUCKETS,
)
PROJECTION_LAG = Gauge(
    "gatherly_projection_lag_messages",
    "Messages of the partition not yet applied: stream last sequence minus the checkpoint,"
    " or a partition consumer's pending plus unacknowledged messages",
    ["projection", "partition"],
)
PROJECTION_CHECKPOINT = Gauge(
    "gatherly_projection_checkpoint_sequence",
    "Stream sequence below which every message is settled",
    ["projection", "partition"],
)
PROJECTION_LAST_BATCH = Gauge(
    "gatherly_projection_last_batch_timestamp_seconds",
    "Unix time of the projection's last committed batch",
    ["projection", "partition"],
)
STREAM_LAST_SEQUENCE = Gauge(
    "gatherly_stream_last_sequence", "Sequence of the last message on the stream", ["stream"]
)

WEBHOOK_ATTEMPTS = Counter(
    "gatherly_webhook_attempts",
    "Delivery attempts by verdict: delivered (2xx), retry (5xx, 429, no answer), rejected "
    "(another 4xx) or gone (410)",
    ["verdict"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "gatherly_webhook_attempt_duration_seconds",
    "Time one delivery attempt took, address check and response included, by verdict",
    ["verdict"],
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "gatherly_webhook_deliveries",
    "Deliveries settled by an attempt: delivered, retried (another attempt scheduled) or failed "
    "(rejected, or the retry schedule spent)",
    ["outcome"],
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "gatherly_webhook_endpoints_disabled",
    "Endpoints turned off: gone (answered 410) or failing (every attempt failed too long)",
    ["reason"],
)
RATE_LIMITED = Counter(
    "gatherly_rate_limited_requests",
    "Requests the edge refused with 429, by the policy that refused them (never by key)",
    ["policy"],
)


class RelayMetrics:
    """One relay's metrics, labelled once."""

    def __init__(self, schema: str) -> None:
        self.published = RELAY_PUBLISHED.labels(schema)
        self.unpublished = RELAY_UNPUBLISHED.labels(schema)
        self.delay = RELAY_DELAY.labels(schema)
        self.leader = RELAY_LEADER.labels(schema)


class ProjectionMetrics:
    """One projection partition's metrics, labelled once. The partition's gauges exist only
    while this process runs the partition (`forget` on hand-over), so summing them over
    processes counts each partition once."""

    def __init__(self, projection: str, stream: str, partition: str = "0/1") -> None:
        self.applied = PROJECTION_MESSAGES.labels(projection, "applied")
        self.duplicates = PROJECTION_MESSAGES.labels(projection, "duplicate")
        self.deferred = PROJECTION_MESSAGES.labels(projection, "deferred")
        self.poison = PROJECTION_MESSAGES.labels(projection, "poison")
        self.batch_size = PROJECTION_BATCH_SIZE.labels(projection)
        self.batch_duration = PROJECTION_BATCH_DURATION.labels(projection)
        self._partition = (projection, partition)
        self.stream_last = STREAM_LAST_SEQUENCE.labels(stream)
        self.lag = PROJECTION_LAG.labels(*self._partition)
        self.checkpoint = PROJECTION_CHECKPOINT.labels(*self._partition)
        self.last_batch = PROJECTION_LAST_BATCH.labels(*self._partition)

    def forget(self) -> None:
        """Drop this partition's gauges: another process runs it now."""
        for gauge in (PROJECTION_LAG, PROJECTION_CHECKPOINT, PROJECTION_LAST_BATCH):
            with contextlib.suppress(KeyError):
                gauge.remove(*self._partition)


class HttpMetrics:
    """RED metrics by route template (`/v1/communities/{community_id}/members`), so a path full
    of ids stays one series. Outermost middleware: it times what the client waits for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMEASURED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED_ROUTE)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_DURATION.labels(method, template).observe(time.perf_counter() - started)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def relay_metrics_port(settings: Settings, schema: str) -> int:
    """0 when turned off."""
    base = settings.relay_metrics_port
    return base + WRITERS.index(schema) if base else 0


def projector_metrics_port(settings: Settings, projection: str) -> int:
    """0 when turned off. A projection is registered under its own name; one that is not (a
    test's) gets the port after the registered ones."""
    base = settings.projector_metrics_port
    names = list(PROJECTIONS)
    return base + (names.index(projection) if projection in names else len(names)) if base else 0


def worker_metrics_port(settings: Settings, worker: str) -> int:
    """0 when turned off. Workers (`gatherly.registry.WORKERS`) follow the projections, one port
    left free between them for a projection the registry does not name."""
    base = settings.projector_metrics_port
    return base + len(PROJECTIONS) + 1 + list(WORKERS).index(worker) if base else 0


def serve_metrics(host: str, port: int) -> None:
    """Serve `/metrics` from a daemon thread. A port in use costs the metrics, not the process:
    the relay and the projector keep working, and the warning says why the target is down."""
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        log.warning("metrics endpoint on %s:%d not started: %s", host, port, error)


async def sample_every(
    seconds: float, stopping: asyncio.Event, sample: Callable[[], Awaitable[None]]
) -> None:
    """Call `sample` every `seconds` until `stopping`; a failed sample is retried next time."""
    while not stopping.is_set():
        try:
            await sample()
        except Exception as error:  # a lag we cannot measure now must not stop the worker
            log.debug("metrics sample failed: %s", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)


@contextlib.asynccontextmanager
async def sampling(seconds: float, sample: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """`sample` every `seconds` while the block runs. Ended by a signal as well as a cancel:
    Python 3.11's wait_for may swallow a cancel that lands as a request inside `sample`
    completes, and a sampler stopped by the cancel alone would then sample on forever while the
    block's exit waits for it."""
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_every(seconds, done, sample))
    try:
        yield
    finally:
        done.set()
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
