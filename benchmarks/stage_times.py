"""Time the default run stage by stage, from a cold stage store and then warm (everything reused).

    python benchmarks/stage_times.py [hydra overrides...]

Prints seconds per stage (tiny base model build + SFT, policy training, each benchmark) and the wall time of the whole
run, cold and warm. A benchmark, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from hydra import compose, initialize_config_dir  # noqa: E402

import harness.config.schema  # noqa: E402,F401
from harness.pipeline import run  # noqa: E402

CONF = Path(__file__).resolve().parent.parent / "conf"


def timed_run(home: Path, overrides: list[str]) -> tuple[float, dict]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.home={home}", "tracking=none", *overrides])
    start = time.perf_counter()
    result = run(cfg)
    return time.perf_counter() - start, result


def main() -> None:
    overrides = sys.argv[1:]
    with tempfile.TemporaryDirectory() as home:
        cold, result = timed_run(Path(home), overrides)
        warm, _ = timed_run(Path(home), overrides)
    rows = [("base model (tokenizer + SFT)", result["stages"]["model"].get("stage_seconds")),
            (f"policy ({result['axes']['algorithm']})", result["stages"]["policy"].get("stage_seconds"))]
    rows += [(f"eval {key}", b.get("stage_seconds")) for key, b in result["benchmarks"].items()]
    print(f"\n{'stage':<40} {'seconds':>9}")
    for name, secs in rows:
        print(f"{name:<40} {secs if secs is not None else float('nan'):>9.1f}")
    print(f"{'whole run, cold':<40} {cold:>9.1f}\n{'whole run, warm (all reused)':<40} {warm:>9.1f}")
    print(f"torch threads: {__import__('torch').get_num_threads()}, cpu count: {os.cpu_count()}")


if __name__ == "__main__":
    main()
