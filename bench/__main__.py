"""Every benchmark of bench/, one after another: ``python -m bench`` (about a quarter of an hour).

Each prints what it measures, the machine, and its figures; BENCHMARKS.md records them.
Run on a quiet machine: the figures compare bgproc with bare Celery / RedBeat measured
in the same run, so noise hurts both sides, but it still widens the spread.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    "bench_timing",
    "bench_tick",
    "bench_lateness",
    "bench_throughput",
    "bench_monitor",
    "bench_metrics",
    "bench_web",
)


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n######## python -m bench.{name}", flush=True)
        began = time.monotonic()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode
        print(f"######## {name}: exit {code} after {time.monotonic() - began:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
