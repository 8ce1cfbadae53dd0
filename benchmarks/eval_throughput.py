"""Throughput of the harness's evaluation against lm-eval run directly, on the same model and the same tasks.

    python benchmarks/eval_throughput.py                       # tiny model, tiny suite's lm-eval benchmarks
    python benchmarks/eval_throughput.py --benchmarks gsm8k --repeats 3

For each benchmark the harness path (harness.eval.suite.run_benchmark: data selection, generated task files,
request recording, sample files) and the direct path (lm-eval's simple_evaluate on the generated task files, with
an HFLM over the same weights) are timed; the script prints requests per second for both and their ratio. The
harness's time includes selecting and writing the data and building its dataset, which the direct run then finds
in the datasets cache: the ratio is an upper bound on the overhead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness, not an installed one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", nargs="+", default=["mmlu", "gsm8k", "bbh", "ifeval"],
                        help="keys of lm-eval benchmarks in the suite")
    parser.add_argument("--suite", default="tiny")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stages", default=None, help="stage directory (default: a temporary one)")
    args = parser.parse_args()

    from hydra import compose, initialize_config_dir
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import harness.config.schema  # noqa: F401  (registers the schemas)
    from harness.eval.generation import REQUESTS_FILE, make_lm
    from harness.eval.suite import EvalContext, LazyPolicy, run_benchmark
    from harness.models import base_model

    stages = Path(args.stages or tempfile.mkdtemp(prefix="eval-throughput-"))
    conf = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=[f"eval={args.suite}", f"paths.stages={stages}"])
    ref, _ = base_model(cfg.model, str(stages))
    lm = make_lm("hf", ref, cfg.model, cfg.eval.batch_size)
    print(f"{'benchmark':<16} {'requests':>8} {'harness req/s':>14} {'lm-eval req/s':>14} {'ratio':>7}")
    for key in args.benchmarks:
        bench = cfg.eval.benchmarks[key]
        if bench.runner != "lm_eval":
            raise SystemExit(f"{key} is scored by the {bench.runner!r} runner, not lm-eval: nothing to compare")
        harness_s, direct_s, requests = [], [], 0
        for i in range(args.repeats):
            ctx = EvalContext(stages / "bench" / f"{key}-{i}", LazyPolicy(lambda: lm), cfg.eval.batch_size)
            start = time.perf_counter()
            run_benchmark(bench, ctx)
            harness_s.append(time.perf_counter() - start)
            requests = sum('"kind": "apply_chat_template"' not in line for line in (ctx.dir / REQUESTS_FILE).open())
            tasks = sorted(p.stem for p in (ctx.dir / "tasks").glob("*.yaml"))
            top = f"harness_{bench.name}" if bench.subsets else tasks[0]
            start = time.perf_counter()
            simple_evaluate(model=lm, tasks=[top], task_manager=TaskManager(include_path=str(ctx.dir / "tasks"), include_defaults=False),
                            apply_chat_template=bench.apply_chat_template,
                            fewshot_as_multiturn=bench.fewshot_as_multiturn and bench.apply_chat_template,
                            bootstrap_iters=0, random_seed=bench.subset_seed)
            direct_s.append(time.perf_counter() - start)
        h, d = min(harness_s), min(direct_s)
        print(f"{key:<16} {requests:>8} {requests / h:>14.2f} {requests / d:>14.2f} {d / h:>7.2f}")
    print("ratio = harness throughput / lm-eval throughput (best of repeats; 1.0 = no overhead)")


if __name__ == "__main__":
    main()
