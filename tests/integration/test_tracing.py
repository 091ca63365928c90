"""One POST is one trace: edge auth, members service, relay and KPI projection share or link it."""

from __future__ import annotations

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from gateway.edge.app import create_app as create_edge
from gatherly.db import create_engine
from gatherly.outbox import Relay
from gatherly.projection import ProjectionRunner
from gatherly.settings import Settings
from gatherly.telemetry import configure_tracing, trace_headers, tracer
from services.kpi.projections import KpiProjection
from services.members.app import create_app as create_members
from tests.helpers import eventually, running

EXPORTER = InMemorySpanExporter()


async def test_one_join_is_one_trace_from_the_edge_to_the_projection(settings: Settings) -> None:
    configure_tracing("gatherly-tests", exporter=EXPORTER)
    EXPORTER.clear()
    settings = settings.model_copy(update={"admin_key": SecretStr("gk_admin_test")})
    edge, members = create_edge(settings), create_members(settings)
    members_engine = members.state.engine
    kpi_engine = create_engine(settings.database, "kpi")

    with tracer().start_as_current_span("client request", kind=SpanKind.CLIENT) as root:
        trace_id = root.get_span_context().trace_id
        # What Traefik does: ask the edge app, then forward with the identity it returned.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge),
                                     base_url="http://edge") as client:
            auth = await client.get("/auth", headers={
                **trace_headers(), "Authorization": "Bearer gk_admin_test",
                "X-Forwarded-Uri": "/v1/communities/c1/members"})
        assert auth.status_code == 200
        identity = {k: v for k, v in auth.headers.items() if k.startswith("x-gatherly-")}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=members),
                                     base_url="http://members") as client:
            joined = await client.post("/v1/communities/c1/members", json={"channel": "vk"},
                                       headers={**trace_headers(), **identity})
        assert joined.status_code == 201

    relay = Relay(settings, "members", members_engine)
    runner = ProjectionRunner(settings, KpiProjection(), kpi_engine)
    async with running(relay), running(runner):
        async def projected() -> bool:
            return runner.applied >= 1

        await eventually(projected)
    await members_engine.dispose()
    await kpi_engine.dispose()
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]

    spans = EXPORTER.get_finished_spans()
    in_trace = {s.name for s in spans if s.context.trace_id == trace_id}
    assert any("/auth" in name for name in in_trace), in_trace
    assert any("/v1/communities/{community_id}/members" in name for name in in_trace), in_trace
    assert "gatherly.c1.member.joined publish" in in_trace
    [process] = [s for s in spans if s.name == "kpi process"]
    assert trace_id in {link.context.trace_id for link in process.links}
    assert process.kind is SpanKind.CONSUMER
