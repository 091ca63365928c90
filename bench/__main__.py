"""`python -m bench` (`make bench`): every kernel benchmark, one after the other."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = ["bench.pipeline", "bench.freshness"]

for name in BENCHMARKS:
    sys.argv = [name]
    runpy.run_module(name, run_name="__main__")
    print()
