"""Time `python -m harness.sweep plan <sweep>` (default: all, 42 runs): wall and CPU seconds of a fresh interpreter,
cold (an empty compose cache: every run composed by Hydra, as after a change under conf/) and warm (the configs read
back from the cache, harness.config.compose: the same command again, or another sweep over the same runs).

    python benchmarks/plan_time.py [sweep ...]       # target: plan all <= 5 s (warm)

CPU seconds (user + system of the child) are printed too: on a shared machine they are the figure that load does not
inflate.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(sweep: str, cache: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_COMPOSE_CACHE": cache}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.sweep", "plan", sweep], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    for sweep in sys.argv[1:] or ["all"]:
        with tempfile.TemporaryDirectory() as cache:
            for state in ("cold", "warm"):
                wall, cpu = timed(sweep, cache)
                print(f"plan {sweep} {state}: {wall:.1f} s wall, {cpu:.1f} s CPU  (target <= 5 s; ratio {wall / 5:.2f})")


if __name__ == "__main__":
    main()
