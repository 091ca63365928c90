"""The Grafana dashboards query only metrics Gatherly exports (Traefik's are checked against a
live Traefik in tests/e2e/test_observability_prometheus.py), and Grafana can provision them.
Gatherly's own: every process's (gatherly.metrics) and the NATS exporter's (gatherly.nats_metrics,
a collector that reads a server at scrape time, so its names come from what it makes of one)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import gatherly.metrics  # noqa: F401  (registers every Gatherly metric)
from gatherly.nats_metrics import jetstream_metrics, server_metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "rate", "irate",
    "increase", "histogram_quantile", "time", "and", "or", "unless", "offset", "bool",
}
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers and groupings removed)."""
    bare = _GROUPINGS.sub(" ", _LABEL_MATCHERS.sub(" ", expr))
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    return {word for word in _IDENTIFIER.findall(bare) if word not in PROMQL_WORDS}


def dashboard_metrics(path: Path) -> set[str]:
    names: set[str] = set()
    for expr in expressions(json.loads(path.read_text())):
        names |= metric_names(expr)
    return names


# What a NATS server's /varz and /jsz say, cut to the fields the exporter reads.
VARZ = {"server_name": "n1", "connections": 3, "in_msgs": 10, "mem": 1}
JSZ = {"storage": 5, "account_details": [{"stream_detail": [{
    "name": "GATHERLY", "state": {"messages": 2, "bytes": 70},
    "consumer_detail": [{"name": "kpi", "num_pending": 1, "num_ack_pending": 0}]}]}]}


def gatherly_sample_names() -> set[str]:
    """Every series name Gatherly's metrics expose, suffixes (_total, _bucket…) included."""
    names: set[str] = {"gatherly_nats_up"}
    nats = [*server_metrics(VARZ), *jetstream_metrics("n1", JSZ)]
    for family in [*REGISTRY.collect(), *nats]:
        if family.name.startswith("gatherly_"):
            base = family.name
            names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return names


def test_the_metric_name_parser_sees_through_matchers_and_groupings() -> None:
    expr = ('histogram_quantile(0.99, sum by (service, le) '
            '(rate(a_bucket{status=~"5..", route="/x"}[1m]))) / max(b_total) - time()')
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_there_are_red_pipeline_and_freshness_dashboards() -> None:
    titles = {json.loads(path.read_text())["uid"] for path in DASHBOARDS}
    assert {"gatherly-red", "gatherly-pipeline", "gatherly-kpi-freshness",
            "gatherly-webhooks"} <= titles


def test_the_nats_exporter_reads_streams_and_consumers_from_jsz() -> None:
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in jetstream_metrics("n1", JSZ) for sample in family.samples}
    stream = (("server", "n1"), ("stream", "GATHERLY"))
    assert samples[("gatherly_nats_stream_messages", stream)] == 2
    assert samples[("gatherly_nats_stream_bytes", stream)] == 70
    consumer = (("consumer", "kpi"), ("server", "n1"), ("stream", "GATHERLY"))
    assert samples[("gatherly_nats_consumer_pending_messages", consumer)] == 1
    counters = {s.name: s.value for family in server_metrics(VARZ) for s in family.samples}
    assert counters["gatherly_nats_in_messages_total"] == 10
    assert counters["gatherly_nats_slow_consumers_total"] == 0  # absent from /varz: 0


def test_dashboards_query_only_metrics_gatherly_or_traefik_expose() -> None:
    exported = gatherly_sample_names()
    for path in DASHBOARDS:
        for name in dashboard_metrics(path):
            assert name.startswith(("gatherly_", "traefik_")), f"{path.name}: {name}"
            if name.startswith("gatherly_"):
                assert name in exported, f"{path.name} queries {name}, which nothing exports"


def test_every_panel_reads_the_provisioned_prometheus_datasource() -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = next(d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus")
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
