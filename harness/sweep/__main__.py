"""Sweep tools: plan a sweep before running it, and check one that was submitted.

    python -m harness.sweep plan table1 [overrides...]     # runs, GPU-hours, peak GPUs: per table and per algorithm
    python -m harness.sweep plan all --stages --json plan.json   # and every unique stage
    python -m harness.sweep status <sweep dir> | --latest  # state of a submitted sweep's runs, failures with logs

The sweeps themselves run through Hydra: `python -m harness -m +sweep=table1 [hydra/launcher=slurm]`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from harness import cli


@cli.command("harness.sweep")
def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.get("HARNESS_HOME") or os.getcwd())
    parser = cli.ArgumentParser(prog="python -m harness.sweep", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="dry run: unique runs and stages after deduplication, and GPU-hours")
    p.add_argument("sweep", help="a file of sweeps/ without .yaml (table1 ... table5, figure3, all)")
    p.add_argument("overrides", nargs="*", help="overrides applied to every run (as on the harness command line)")
    p.add_argument("--json", type=Path, help="also write the plan as JSON here")
    p.add_argument("--stages", action="store_true", help="also list every unique stage (and every warning)")
    s = sub.add_parser("status", help="state of a submitted sweep")
    s.add_argument("sweep_dir", nargs="?", type=Path)
    s.add_argument("--latest", action="store_true", help="the newest sweep under --results")
    s.add_argument("--results", type=Path, default=home / "results", help="results directory (default: $HARNESS_HOME/results)")
    args = parser.parse_args(argv)

    if args.command == "plan":
        from harness.sweep import plan

        sweeps = sorted(p.stem for p in (plan.CONF_DIR / "sweep").glob("*.yaml"))
        if args.sweep not in sweeps:
            parser.error(f"unknown sweep {args.sweep!r}; valid: {sweeps}")
        with cli.collected_warnings() as warned:  # e.g. sources not pinned yet: one line, not one per source
            runs = plan.plan_sweep(args.sweep, args.overrides)
            grid_points = sum(len(r.job_nums) for r in runs)
            result = plan.report(runs, grid_points, name=args.sweep, profiles=plan.slurm_profiles())
        print(plan.render(result, stages=args.stages, warnings=list(dict.fromkeys(warned))))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 1 if result["memory_errors"] else 0

    from harness.sweep import status

    if args.sweep_dir is None and not args.latest:
        parser.error("give a sweep directory or --latest")
    sweep_dir = status.latest_sweep_dir(args.results) if args.latest else args.sweep_dir
    summary = status.status(sweep_dir)
    print(status.render(summary))
    return 1 if any(r["state"] == "failed" for r in summary["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
