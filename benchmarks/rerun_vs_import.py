"""A finished run, run again, against the import floor: the wall time of `python -m harness` on a run already recorded
over the wall time of merely importing torch, transformers, TRL, lm-eval, MLflow and datasets.

    python benchmarks/rerun_vs_import.py [--home DIR] [hydra overrides...]     # target: ratio <= 0.5

Without --home the run is first computed in a temporary home (the tiny default run: a minute or two on CPU). Each
timing is the best of --repeats fresh interpreters, so both sides see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "import torch, transformers, trl, lm_eval, mlflow, datasets"


def wall(cmd: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="paths.home of an already recorded run (default: compute one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", default=["tracking=none"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cli = [sys.executable, "-m", "harness", f"paths.home={args.home or tmp}", *args.overrides]
        if args.home is None:
            print("computing the run once ...", flush=True)
            wall(cli, 1)
        rerun = wall(cli, args.repeats)
    floor = wall([sys.executable, "-c", IMPORTS], args.repeats)
    print(f"rerun of a finished run   {rerun:6.2f} s")
    print(f"import floor ({IMPORTS.removeprefix('import ')})  {floor:6.2f} s")
    print(f"ratio rerun / import floor: {rerun / floor:.2f}  (target <= 0.5)")


if __name__ == "__main__":
    main()
