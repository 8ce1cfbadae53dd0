"""Regenerate the paper's Tables 1-5 and Figures 1 and 3 from the runs present, beside the paper's numbers.

    python -m harness.report                                  # results/index.jsonl -> reports/
    python -m harness.report --source mlflow                  # the same, read from MLflow (the runs' tracking URI)
    python -m harness.report --model tiny --out reports/tiny  # the tiny grid (sweep tiny_all: model tiny, suite tiny_grid)

Writes reports/table1..table5 and figure1, figure3 as .csv, .md, _runs.csv (the runs behind every cell, with
provenance) and _variants.csv (runs of a row's axes with another recipe), and figure1.png, figure3.png. Which run
fills which cell: harness/report/grid.py and recipe.py; intervals: bootstrap.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.config.groups import options
from harness.config.errors import ConfigError
from harness.report.grid import PAPER_MODEL

# The main suite and scale of a base model's grid: the tiny grid (sweeps/tiny_all.yaml) evaluates on
# conf/eval/tiny_grid.yaml at scale=tiny (its recipes are the tiny stand-ins).
DEFAULT_SUITES = {"tiny": "tiny_grid"}
DEFAULT_SCALES = {"tiny": "tiny"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    home = Path(os.environ.get("HARNESS_HOME") or os.getcwd())
    p = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.split("\n")[0])
    p.add_argument("--source", choices=("disk", "mlflow"), default="disk",
                   help="read runs from the results index (disk) or from MLflow; both give the same report")
    p.add_argument("--results", type=Path, default=home / "results", help="results directory of the runs")
    p.add_argument("--out", type=Path, default=home / "reports", help="where the report is written")
    p.add_argument("--model", default=PAPER_MODEL, help="base model of the grid (conf/model); tiny for the tiny grid")
    p.add_argument("--suite", default=None, help="main evaluation suite (conf/eval); default: tiny_grid for --model tiny "
                                                 "(the tiny_all sweep's), else paper")
    p.add_argument("--scale", default=None, choices=options("scale"),
                   help="scale of the grid's recipes (conf/scale); default: tiny for --model tiny, else paper")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI; default: the one runs use for --results")
    p.add_argument("--experiment", default=None, help="MLflow experiment; default: the one runs use")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from harness.report.generate import generate, summary
    from harness.report.runs import read_disk, read_mlflow, run_tracking

    try:
        if args.model not in options("model"):
            raise ConfigError(f"--model {args.model!r} is not a conf/model entry; valid: {options('model')}")
        suite = args.suite or DEFAULT_SUITES.get(args.model, "paper")
        if suite not in options("eval"):
            raise ConfigError(f"--suite {suite!r} is not a conf/eval suite; valid: {options('eval')}")
        results = args.results.resolve()
        if args.source == "disk":
            runs, where = read_disk(results), results / "index.jsonl"
        else:
            uri, experiment = run_tracking(results)
            uri, experiment = args.tracking_uri or uri, args.experiment or experiment
            runs, where = read_mlflow(uri, experiment), f"{uri} (experiment {experiment})"
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scale = args.scale or DEFAULT_SCALES.get(args.model, "paper")
    print(f"[report] {len(runs)} runs from {where}; base model {args.model}, suite {suite}, scale {scale}")
    written = generate(runs, args.out, args.model, suite, scale)
    print(summary(written, runs, args.model, suite))
    return 0


if __name__ == "__main__":
    sys.exit(main())
