"""`python -m bench` (`make bench`): every benchmark, one after the other, with its defaults."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = [
    "bench.pipeline",
    "bench.freshness",
    "bench.members_join",
    "bench.members_import",
    "bench.events_checkin",
    "bench.engagement_batch",
    "bench.kpi_projection",
    "bench.kpi_query",
    "bench.kpi_rebuild",
    "bench.gateway_throughput",
    "bench.edge_auth_metrics",
    "bench.webhooks_delivery",
]

for name in sys.argv[1:] or BENCHMARKS:
    print(f"$ python -m {name}", flush=True)
    sys.argv = [name]
    runpy.run_module(name, run_name="__main__")
    print(flush=True)
