"""Any runs side by side: their scores, the fields in which their configurations differ, and each run's difference
to a baseline run with a 95% bootstrap interval over the benchmarks' items.

    python -m harness.compare RUN_ID RUN_ID ...                   # by run id (or a prefix naming one run)
    python -m harness.compare --where dataset=prm800k --where algorithm.beta=0.5
    python -m harness.compare --sweep tiny_all --baseline tiny-tiny-none-none-none-s42-1a2b3c4d
    python -m harness.compare --mlflow "tags.algorithm = 'dpo'"   # an MLflow search filter (reads MLflow)
    python -m harness.compare ... --source mlflow --out reports/compare --plot

Selection: run ids, `--where KEY=VALUE` (an axis: model, dataset, algorithm, reward_model, prompts, eval_suite; seed;
or a dotted field of the run's configuration), `--sweep ID` and `--mlflow FILTER` all hold at once. Runs come from
results/index.jsonl and each run's result.json and items.json (`--source disk`, the default) or from MLflow (the same
files as the runs' artifacts), and give the same output either way.

Writes <out>/compare.md (also printed), compare.csv (one line per metric and run: score, difference to the baseline,
interval, pairing), compare_config.csv (the differing fields) and, with --plot, compare.png (differences with their
intervals). The intervals: harness/report/bootstrap.py (RESAMPLES resamples, seed SEED; --resamples, --seed).
"""

from __future__ import annotations

import argparse
import os
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.config.errors import ConfigError
from harness.config.schema import CATEGORIES
from harness.records.stages import write_atomic
from harness.report import bootstrap, recipe
from harness.report.grid import AXES
from harness.report.render import fmt, to_csv
from harness.report.runs import RunRecord

NOT_RECORDED = "(not recorded)"


# ------------------------------------------------------------------------------------------------- selection
def value_of(run: RunRecord, key: str) -> str | None:
    """A run's value of a selection key: an axis, its seed, its sweep, or a dotted field of its configuration."""
    if key in AXES:
        return run.axes.get(key)
    if key == "seed":
        return str(run.seed)
    if key == "sweep":
        return run.sweep
    return recipe.flat(run.config).get(key) if run.config is not None else None


def parse_where(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--where {item!r}: expected KEY=VALUE, e.g. --where algorithm=dpo or "
                              "--where algorithm.beta=0.5")
        out.append((key.strip(), value.strip()))
    return out


def select(runs: list[RunRecord], ids: list[str], where: list[tuple[str, str]], sweep: str | None) -> list[RunRecord]:
    chosen = runs
    if ids:
        chosen = []
        for want in ids:
            found = [r for r in runs if r.run_id == want] or [r for r in runs if r.run_id.startswith(want)]
            if len(found) != 1:
                near = ", ".join(r.run_id for r in found[:5]) or "none"
                raise ConfigError(f"run {want!r} names {len(found)} recorded runs ({near}); give a run id from "
                                  "results/index.jsonl (or a prefix naming one run)")
            chosen += [r for r in found if r not in chosen]
    for key, value in where:
        chosen = [r for r in chosen if value_of(r, key) == value]
    if sweep:
        chosen = [r for r in chosen if r.sweep == sweep]
    if not chosen:
        raise ConfigError("no run matches the selection (run ids, --where, --sweep, --mlflow); "
                          f"{len(runs)} runs were read")
    return chosen


# ------------------------------------------------------------------------------------------------- the comparison
@dataclass
class Comparison:
    runs: list[RunRecord]           # the baseline first
    labels: list[str]               # A, B, C ... (run ids are long)
    metrics: list[str]              # eval/<benchmark> ..., category/<name> ..., average
    fields: dict[str, list[str]]    # dotted field -> each run's value, for the fields in which they differ
    differences: list[dict]         # per run after the baseline: metric -> bootstrap.Difference
    resamples: int
    seed: int


def metric_order(runs: list[RunRecord]) -> list[str]:
    bench = [m for r in runs for m in r.metrics if m.startswith("eval/")]
    cats = [f"category/{c}" for c in CATEGORIES if any(f"category/{c}" in r.metrics for r in runs)]
    return list(dict.fromkeys(bench)) + cats + (["average"] if any("average" in r.metrics for r in runs) else [])


def differing_fields(runs: list[RunRecord]) -> dict[str, list[str]]:
    """Dotted field -> each run's value, for every field of the determining configurations not equal in all runs."""
    flats = [recipe.flat(r.config) if r.config is not None else None for r in runs]
    keys = sorted({k for f in flats if f for k in f})
    out = {}
    for k in keys:
        values = [NOT_RECORDED if f is None else f.get(k, recipe.ABSENT) for f in flats]
        if len(set(values)) > 1:
            out[k] = values
    return out


def compare(runs: list[RunRecord], baseline: RunRecord, resamples: int = bootstrap.RESAMPLES,
            seed: int = bootstrap.SEED) -> Comparison:
    runs = [baseline] + [r for r in runs if r.run_id != baseline.run_id]
    labels = [string.ascii_uppercase[i] if i < 26 else f"R{i}" for i in range(len(runs))]
    base_items = baseline.items()
    diffs = [bootstrap.differences(r.items(), base_items, r.metrics, baseline.metrics, resamples, seed)
             for r in runs[1:]]
    return Comparison(runs, labels, metric_order(runs), differing_fields(runs), diffs, resamples, seed)


# ------------------------------------------------------------------------------------------------- output
def difference_text(d: bootstrap.Difference | None) -> str:
    if d is None or d.value is None:
        return "-"
    text = fmt(d.value, signed=True)
    if d.interval is None:
        return f"{text} [no interval]"
    span = f"{text} [{fmt(d.interval[0], signed=True)}, {fmt(d.interval[1], signed=True)}]"
    return span if d.pairing == bootstrap.PAIRED else f"{span} {d.pairing}"


def to_markdown(c: Comparison) -> str:
    base = c.labels[0]
    lines = [f"# {len(c.runs)} runs compared (baseline {base}: {c.runs[0].run_id})", "",
             f"Differences: run - baseline [95% bootstrap interval over the benchmarks' items: {c.resamples} "
             f"resamples, seed {c.seed}; categories and the Average resample each benchmark's items]. Paired unless "
             "marked: both runs scored the same items, resampled together; `unpaired`: the items differ, resampled "
             "independently; `mixed`: an aggregate of both. `no interval`: a run has no item scores for it.", "",
             "| | run | seed | recorded | git commit |", "|---|---|---|---|---|"]
    lines += [f"| {lab} | {r.run_id} | {r.seed} | {r.recorded_at} | {r.git_commit} |" for lab, r in zip(c.labels, c.runs)]
    lines += ["", "## Configuration: the fields in which they differ", ""]
    if c.fields:
        lines += ["| field | " + " | ".join(c.labels) + " |", "|" + "---|" * (1 + len(c.runs))]
        lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in c.fields.items()]
    else:
        lines.append("None: the runs have the same configuration.")
    head = [f"{base} (baseline)"] + [x for lab in c.labels[1:] for x in (lab, f"{lab} - {base}")]
    lines += ["", "## Scores", "", "| metric | " + " | ".join(head) + " |", "|" + "---|" * (1 + len(head))]
    for m in c.metrics:
        cells = [fmt(c.runs[0].metrics.get(m), absent="-")]
        for r, d in zip(c.runs[1:], c.differences):
            cells += [fmt(r.metrics.get(m), absent="-"), difference_text(d.get(m))]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_rows(c: Comparison) -> list[dict]:
    rows = []
    for m in c.metrics:
        for i, (lab, r) in enumerate(zip(c.labels, c.runs)):
            d = c.differences[i - 1].get(m) if i else None
            lo, hi = (d.interval if d and d.interval else (None, None))
            rows.append({"metric": m, "label": lab, "run_id": r.run_id, "score": repr(r.metrics[m]) if m in r.metrics else "",
                         "baseline_run_id": c.runs[0].run_id,
                         "difference": "" if d is None or d.value is None else repr(d.value),
                         "lo": "" if lo is None else repr(lo), "hi": "" if hi is None else repr(hi),
                         "pairing": (d.pairing or "") if d else ""})
    return rows


def plot(c: Comparison, path: Path) -> Path:
    """Each run's difference to the baseline per metric, with its 95% interval."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.35 * len(c.metrics) + 1.5), layout="constrained")
    ax = fig.subplots()
    others = len(c.runs) - 1
    for j, (lab, d) in enumerate(zip(c.labels[1:], c.differences)):
        ys = [i + (j - (others - 1) / 2) * 0.8 / max(others, 1) for i in range(len(c.metrics))]
        for y, m in zip(ys, c.metrics):
            diff = d.get(m)
            if diff is None or diff.value is None:
                continue
            err = None if diff.interval is None else [[diff.value - diff.interval[0]], [diff.interval[1] - diff.value]]
            ax.errorbar([diff.value], [y], xerr=err, fmt="o", color=f"C{j}", capsize=3,
                        label=f"{lab} - {c.labels[0]}" if m == next(iter(c.metrics)) else None)
    ax.axvline(0, color="0.5", linewidth=1)
    ax.set_yticks(range(len(c.metrics)), c.metrics, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"difference to baseline {c.labels[0]} (95% bootstrap interval)")
    ax.legend(fontsize=8)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=120)
    os.replace(tmp, path)
    return path


def write(c: Comparison, out: Path, draw: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {out / "compare.md": to_markdown(c),
             out / "compare.csv": to_csv(csv_rows(c), ["metric", "label", "run_id", "score", "baseline_run_id",
                                                      "difference", "lo", "hi", "pairing"]),
             out / "compare_config.csv": to_csv([{"field": k, **dict(zip((r.run_id for r in c.runs), v))}
                                                 for k, v in c.fields.items()], ["field", *(r.run_id for r in c.runs)])}
    for path, text in files.items():
        write_atomic(path, text)
    return list(files) + ([plot(c, out / "compare.png")] if draw else [])


# ------------------------------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    home = Path(os.environ.get("HARNESS_HOME") or os.getcwd())
    p = argparse.ArgumentParser(prog="python -m harness.compare", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="run ids (or prefixes naming one run each)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep runs whose axis, seed, sweep or configuration field KEY is VALUE (repeatable)")
    p.add_argument("--sweep", default=None, help="keep the runs of this sweep (its `sweep=` id)")
    p.add_argument("--mlflow", default=None, metavar="FILTER",
                   help="an MLflow search filter, e.g. \"tags.algorithm = 'dpo'\" (reads runs from MLflow)")
    p.add_argument("--source", choices=("disk", "mlflow"), default=None,
                   help="read runs from the results index (disk, default) or from MLflow (default with --mlflow)")
    p.add_argument("--baseline", default=None, help="the run the others are compared with (default: the first)")
    p.add_argument("--results", type=Path, default=home / "results", help="results directory of the runs")
    p.add_argument("--out", type=Path, default=home / "reports" / "compare", help="where the comparison is written")
    p.add_argument("--plot", action="store_true", help="also draw compare.png")
    p.add_argument("--resamples", type=int, default=bootstrap.RESAMPLES, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=bootstrap.SEED, help="bootstrap seed")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI; default: the one runs use for --results")
    p.add_argument("--experiment", default=None, help="MLflow experiment; default: the one runs use")
    return p.parse_args(argv)


def read_runs(args) -> list[RunRecord]:
    from harness.report.runs import read_disk, read_mlflow, run_tracking

    source = args.source or ("mlflow" if args.mlflow else "disk")
    if args.mlflow and source != "mlflow":
        raise ConfigError("--mlflow filters MLflow runs: drop --source disk (or use --where on disk)")
    if source == "disk":
        return read_disk(args.results.resolve())
    uri, experiment = run_tracking(args.results.resolve())
    return read_mlflow(args.tracking_uri or uri, args.experiment or experiment, args.mlflow or "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.resamples < 1:
            raise ConfigError(f"--resamples {args.resamples}: give at least 1 (default {bootstrap.RESAMPLES})")
        where = parse_where(args.where)
        everything = read_runs(args)
        runs = select(everything, args.runs, where, args.sweep)
        baseline = select(everything, [args.baseline], [], None)[0] if args.baseline else runs[0]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = compare(runs, baseline, args.resamples, args.seed)
    files = write(result, args.out, args.plot)
    print(to_markdown(result), end="")
    print(f"[compare] written: {' '.join(str(f) for f in files)}")
    return 0
