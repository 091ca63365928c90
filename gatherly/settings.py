"""Configuration from the environment (prefix ``GATHERLY_``); nothing here connects to anything."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_DATABASE = "gatherly"


class Settings(BaseSettings):
    """Every knob of every Gatherly process. Defaults avoid the standard ports (5432, 4222)."""

    model_config = SettingsConfigDict(env_prefix="GATHERLY_", extra="ignore")

    data_dir: Path = Path(".gatherly")
    host: str = "127.0.0.1"

    # External servers; when unset, `gatherly up` starts embedded ones on the ports below.
    database_url: str | None = None
    nats_url: str | None = None
    postgres_port: int = 7432
    nats_port: int = 7422

    gateway_port: int = 7480
    members_port: int = 7481
    kpi_port: int = 7482
    edge_port: int = 7483
    events_port: int = 7484
    engagement_port: int = 7485
    webhooks_port: int = 7486
    inbound_port: int = 7487
    traefik_admin_port: int = 7489

    admin_key: SecretStr | None = None

    stream_name: str = "GATHERLY"
    # `always` fsyncs every JetStream write; see docs/adr/0002 for the throughput trade.
    nats_sync_always: bool = True
    # Must exceed the relay's retry horizon so a republished event is dropped by the stream.
    duplicate_window_seconds: float = 3600.0

    relay_max_in_flight: int = Field(default=1000, ge=1)
    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    relay_ack_timeout_seconds: float = Field(default=5.0, gt=0)
    # After a wake-up, how long the relay waits for more commits to publish them together, and
    # how often it saves its checkpoint while busy (it also saves whenever it falls idle).
    relay_linger_seconds: float = Field(default=0.005, ge=0)
    relay_checkpoint_seconds: float = Field(default=1.0, gt=0)

    # Messages a projection fetches and applies in one transaction at most. A batch has a fixed
    # cost (bookkeeping, a few dozen statements): against the same raw fetch loop, the KPI
    # projection ran 0.56-0.63 of it at 4,000 and 0.44-0.48 at 1,000 in time order, 0.38-0.43
    # and 0.29-0.35 in random order (docs/benchmarks.md, ninth session). A quiet stream still
    # hands over each fact as it comes: a fetch returns what is there.
    projection_batch_size: int = Field(default=4000, ge=1)
    projection_ack_wait_seconds: float = Field(default=10.0, gt=0)

    max_body_bytes: int = Field(default=1_000_000, ge=1)

    # Inbound webhooks: how far a Standard Webhooks `webhook-timestamp` may be from now, and the
    # owning services' base URLs when they are not at host:<service>_port (containers).
    inbound_signature_tolerance_seconds: float = Field(default=300.0, gt=0)
    inbound_service_urls: dict[str, str] = Field(default_factory=dict)
    # Inbound receipts (a replayed delivery records nothing twice) are kept this long: longer than
    # Telegram's, VK's and Standard Webhooks senders' retries (services/inbound/README.md).
    inbound_receipt_retention_hours: float = Field(default=72.0, gt=0)

    # Follow-up duties of a finished event are due this many days after its end, unless set.
    followup_due_days: int = Field(default=7, ge=0)
    # Members bulk import streams its body, so it gets its own, larger limit.
    members_import_max_bytes: int = Field(default=500_000_000, ge=1)

    # Idempotency-Key answers are kept this long (the IETF draft asks for at least 24 hours).
    idempotency_retention_hours: float = Field(default=24.0, gt=0)
    # Gateway: per-API-key token bucket (a key may override both), how soon the edge app sees a
    # new or revoked key, and the browser origins CORS allows (JSON list in the environment).
    key_rate_per_second: float = Field(default=100.0, gt=0)
    key_rate_burst: int = Field(default=200, ge=1)
    key_cache_refresh_seconds: float = Field(default=2.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)

    # Prometheus metrics of the processes without an HTTP app: relay i (gatherly.registry.WRITERS
    # order) serves /metrics on relay_metrics_port + i, projector i (PROJECTIONS order) on
    # projector_metrics_port + i; 0 turns that endpoint off. HTTP apps serve /metrics themselves.
    relay_metrics_port: int = Field(default=7490, ge=0)
    projector_metrics_port: int = Field(default=7495, ge=0)
    # The embedded NATS server's HTTP monitoring port, and where `gatherly nats-metrics` serves
    # what it reads there to Prometheus (`gatherly up` runs both; 0 turns them off).
    nats_monitor_port: int = Field(default=7488, ge=0)
    nats_metrics_port: int = Field(default=7479, ge=0)
    # How often the relay and projector measure their lag (a count query, a stream info request).
    metrics_sample_seconds: float = Field(default=2.0, gt=0)
    # JetStream replicas of the stream when a relay or projector creates it (3 on a 3-node
    # cluster); unset keeps an existing stream's replicas and creates a new one with 1.
    stream_replicas: int | None = Field(default=None, ge=1, le=5)
    # Partitions of the stream by community (docs/adr/0005): each partitioned projection runs one
    # consumer per partition, and its projector processes split them. 1 is today's single
    # consumer. Changing it on a stream that holds facts is refused at start: it is a deliberate
    # operation (ADR 0005 says how).
    stream_partitions: int = Field(default=1, ge=1, le=256)
    partitioned_projections: list[str] = Field(default_factory=lambda: ["kpi"])

    # Outbound webhooks (services/webhooks). The retry schedule is Standard Webhooks' (5 s to
    # 10 h over eight attempts) times `webhook_retry_scale` (tests shrink it); an endpoint whose
    # attempts all fail for `webhook_disable_after_failing_hours` is disabled. http:// and
    # loopback endpoints are refused unless allowed (local development and tests only).
    webhook_retry_scale: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_disable_after_failing_hours: float = Field(default=120.0, gt=0)
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0)
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    webhook_concurrency: int = Field(default=64, ge=1)
    allow_http_webhooks: bool = False
    allow_loopback_webhooks: bool = False

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the Postgres database every service keeps its schema in."""
        url = self.database_url or (
            f"postgresql://postgres@127.0.0.1:{self.postgres_port}/{EMBEDDED_DATABASE}"
        )
        return to_asyncpg_url(url)

    @property
    def nats(self) -> str:
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def uses_embedded_nats(self) -> bool:
        return self.nats_url is None


def to_asyncpg_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and point SQLAlchemy at the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def to_libpq_url(url: str) -> str:
    """The same URL without the SQLAlchemy driver suffix, for asyncpg and psql."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
