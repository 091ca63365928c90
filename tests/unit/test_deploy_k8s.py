"""deploy/k8s (kustomize) checked statically: every process of the registry is deployed with a
command `gatherly` accepts, stateless ones with more than one replica, Postgres from a Secret,
NATS as a 3-node cluster with the stream at R3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gatherly import nats_metrics
from gatherly.cli import build_parser
from gatherly.registry import APPS, PROJECTIONS, WORKERS, WRITERS
from gatherly.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
RESOURCES: list[dict[str, Any]] = [
    document
    for name in KUSTOMIZATION["resources"]
    for document in yaml.safe_load_all((K8S / name).read_text())
    if document
]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == kind}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"]["containers"][0])


def test_kustomize_inputs_exist() -> None:
    for generator in KUSTOMIZATION["configMapGenerator"]:
        for entry in generator["files"]:
            assert (K8S / entry.split("=", 1)[1]).resolve().exists(), entry


def test_every_process_is_deployed_with_a_real_command_and_replicas() -> None:
    deployments = of_kind("Deployment")
    commands = {}
    for name, deployment in deployments.items():
        args = container(deployment)["args"]
        if container(deployment)["image"] == "gatherly":
            build_parser().parse_args(args)
            commands[tuple(args)] = deployment
            assert deployment["spec"]["replicas"] > 1, f"{name}: one replica is one failure away"
    wanted = ({("serve", a) for a in APPS} | {("relay", w) for w in WRITERS}
              | {("project", p) for p in PROJECTIONS} | {("work", w) for w in WORKERS})
    assert wanted <= set(commands)
    assert of_kind("Deployment")["traefik"]["spec"]["replicas"] > 1


def test_postgres_comes_from_a_secret_and_config_names_only_settings() -> None:
    fields = {f"GATHERLY_{field.upper()}" for field in Settings.model_fields}
    config = of_kind("ConfigMap")["gatherly"]["data"]
    assert {k for k in config if k.startswith("GATHERLY_")} <= fields
    assert "GATHERLY_DATABASE_URL" not in config
    for workload in [*of_kind("Deployment").values(), *of_kind("Job").values()]:
        if container(workload)["image"] == "gatherly":
            sources = container(workload)["envFrom"]
            assert {"secretRef": {"name": "gatherly-database"}} in sources


def test_nats_is_a_three_node_cluster_and_the_stream_has_three_replicas() -> None:
    nats = of_kind("StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    assert of_kind("ConfigMap")["gatherly"]["data"]["GATHERLY_STREAM_REPLICAS"] == "3"
    cluster = (K8S.parent / "nats" / "cluster.conf").read_text()
    assert all(f"nats-{i}.nats:6222" in cluster for i in range(3))


def test_two_kpi_projectors_split_the_stream_s_partitions() -> None:
    projector = of_kind("Deployment")["project-kpi"]
    partitions = int(of_kind("ConfigMap")["gatherly"]["data"]["GATHERLY_STREAM_PARTITIONS"])
    assert projector["spec"]["replicas"] == 2
    assert partitions >= projector["spec"]["replicas"], "a replica would have nothing to run"
    assert "kpi" in Settings().partitioned_projections


def test_every_nats_node_has_a_metrics_sidecar_prometheus_scrapes() -> None:
    pod = of_kind("StatefulSet")["nats"]["spec"]["template"]
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "nats-exporter")
    assert sidecar["command"] == ["python", "-m", "gatherly.nats_metrics"]
    args = nats_metrics.build_parser().parse_args(sidecar["args"])
    assert args.monitor_url == "http://127.0.0.1:8222"  # the node's own monitoring port
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(args.port)


def test_every_gatherly_http_app_is_scraped_at_its_port() -> None:
    for name, (_, port_field) in APPS.items():
        pod = of_kind("Deployment")[name]["spec"]["template"]
        port = getattr(Settings(), port_field)
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port), name
