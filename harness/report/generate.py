"""Every table and figure of the report from a list of runs: build the cells, write CSV, Markdown and PNG."""

from __future__ import annotations

from pathlib import Path

from harness.report import figures, render
from harness.report.build import Context, TableResult, build
from harness.report.grid import FIGURES, TABLES
from harness.report.runs import RunRecord
from harness.records.stages import write_atomic


def generate(runs: list[RunRecord], out: Path, model: str, suite: str, scale: str = "paper") -> list[tuple[TableResult, list[Path]]]:
    """Writes tables 1-5 (CSV, Markdown, runs and variants CSV) and figures 1 and 3 (the same, plus PNG) under `out`,
    and the learning curves of the runs that have them (curves.csv, curves.png)."""
    written = []
    ctx = Context(model, suite, scale)
    for table in (*TABLES, *FIGURES):
        result = build(table, runs, model, suite, ctx)
        files = render.write(result, Path(out))
        if table in FIGURES:
            files.append(figures.write(result, Path(out)))
        written.append((result, files))
    return written + write_curves(runs, Path(out))


def write_curves(runs: list[RunRecord], out: Path) -> list[tuple[None, list[Path]]]:
    """curves.csv (run, step, metric, score) and curves.png for the runs with a learning curve; nothing without."""
    with_curve = [r for r in runs if r.curve]
    if not with_curve:
        return []
    rows = [{"run_id": r.run_id, "step": step, "metric": m, "score": repr(v)}
            for r in with_curve for step, scores in sorted(r.curve.items()) for m, v in sorted(scores.items())]
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "curves.csv", render.to_csv(rows, ["run_id", "step", "metric", "score"]))
    return [(None, [out / "curves.csv", figures.save(figures.curves(with_curve), out / "curves.png")])]


def summary(written: list[tuple[TableResult, list[Path]]], runs: list[RunRecord], model: str, suite: str) -> str:
    lines, used, variants = [], set(), set()
    for result, files in written:
        if result is None:  # the learning curves
            lines.append("  curves   " + " ".join(str(f) for f in files))
            continue
        cells = list(result.cells())
        filled = sum(cell.value is not None for _, _, cell in cells)
        used |= {c.run.run_id for _, _, cell in cells for c in cell.contributions}
        variants |= {v.run.run_id for v in result.variants}
        lines.append(f"  {result.table.name:<8} {filled:>3}/{len(cells):<3} cells filled   "
                     + " ".join(str(f) for f in files if not f.name.endswith("_variants.csv")))
    if variants - used:
        lines.append(f"  {len(variants - used)} run(s) differ from the recipe of the cells their axes match: listed as "
                     "variants under their tables (<table>.md, <table>_variants.csv), not averaged in")
    unused = [r for r in runs if r.run_id not in used | variants]
    if unused:
        others = sorted({(r.axes["model"], r.axes["eval_suite"]) for r in unused})
        lines.append(f"  {len(unused)} of {len(runs)} runs fill no cell of the grid for --model {model} --suite {suite} "
                     f"(their model, suite: {', '.join(f'{m}, {s}' for m, s in others)})")
    return "\n".join(lines)
