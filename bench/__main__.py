"""`python -m bench [NAME...]`: run the benchmarks (all by default), each printing its own figures."""

from __future__ import annotations

import importlib
import sys

BENCHES = ("bench_simulator", "bench_detectors", "bench_store", "bench_slice", "bench_vision", "bench_count")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        module.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
