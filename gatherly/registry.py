"""The single wiring point: which processes the system runs, by name.

Strings, so the kernel never imports a service at module level. Adding a service means adding
its lines here; `gatherly up`, the CLI and the gateway's upstream URLs all read these tables.
"""

from __future__ import annotations

# HTTP app name -> (factory "module:function" taking Settings, the Settings field with its port).
APPS: dict[str, tuple[str, str]] = {
    "members": ("services.members.app:create_app", "members_port"),
    "kpi": ("services.kpi.app:create_app", "kpi_port"),
    "events": ("services.events.app:create_app", "events_port"),
    "engagement": ("services.engagement.app:create_app", "engagement_port"),
    "edge": ("gateway.edge.app:create_app", "edge_port"),
    "webhooks": ("services.webhooks.app:create_app", "webhooks_port"),
    "inbound": ("services.inbound.app:create_app", "inbound_port"),
}
# Postgres schema -> the package holding its Alembic migrations (kernel tables come first).
SCHEMAS: dict[str, str] = {
    "members": "services.members.migrations",
    "kpi": "services.kpi.migrations",
    "events": "services.events.migrations",
    "engagement": "services.engagement.migrations",
    "edge": "gateway.edge.migrations",
    "webhooks": "services.webhooks.migrations",
    "inbound": "services.inbound.migrations",
}
# Schemas whose event store an outbox relay publishes.
WRITERS: tuple[str, ...] = ("members", "events", "engagement", "webhooks")
# Projection name -> factory "module:function" returning a gatherly.projection.Projection.
PROJECTIONS: dict[str, str] = {
    "kpi": "services.kpi.projections:build_projection",
    "webhooks": "services.webhooks.projection:build_projection",
    # Forgets an erased member's words in the engagement tables (docs/adr/0003).
    "engagement-erasure": "services.engagement.erasure_projection:build_projection",
}
# Other long-running workers: name -> "module:function", an `async def main(settings) -> None`
# that runs until cancelled (`gatherly work <name>`; `gatherly up` runs each as `work-<name>`).
WORKERS: dict[str, str] = {"webhooks-delivery": "services.webhooks.delivery:main"}
