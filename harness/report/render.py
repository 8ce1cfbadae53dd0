"""A built table as files: the table (CSV and Markdown, same cells) and every run behind it (CSV, with provenance).

    <name>.csv        one line per row: label columns, then per column <c> (reproduced mean, or "missing"),
                      <c>_n (runs averaged), <c>_lo and <c>_hi (its 95% interval, or "n/a"), <c>_paper (the paper's
                      number, or "n/a"), <c>_diff (reproduced - paper), <c>_outside ("yes" when the paper's number
                      lies outside the interval, "no", or "n/a")
    <name>.md         the same table, one cell per column: "56.1 [54.0, 58.2] (55.4, +0.7)", "56.1 ×3 [...] (...)",
                      "59.9 [58.1, 61.5] (55.4, +4.5†)" (†: the paper's number is outside the interval),
                      "missing (55.4)"; then the variants (runs of a row's axes with another recipe, and what they
                      change) and the runs behind the cells (config hash, date, git commit)
    <name>_runs.csv   one line per (cell, run): row label(s) joined by " / ", column, the run's own value and its
                      weight in the cell, provenance (config hash, recorded_at, git commit, seed) and axes
    <name>_variants.csv  one line per (variant run, row): the fields it changes, its own value per column

Numbers have one decimal, as in the paper; the runs CSV keeps full precision. `parse_markdown` reads a Markdown table
back into the CSV's cells.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from harness.report.build import Cell, TableResult, label_of
from harness.report.grid import AXES
from harness.records.stages import write_atomic

MISSING = "missing"
NOT_IN_PAPER = "n/a"
OUTSIDE = "†"
NUMBER = r"[+-]?\d+\.\d"
CELL_RE = re.compile(rf"^(?P<value>missing|{NUMBER})(?: ×(?P<n>\d+))?(?: \[(?P<lo>{NUMBER}), (?P<hi>{NUMBER})\])? "
                     rf"\((?P<paper>n/a|{NUMBER})(?:, (?P<diff>[+-]\d+\.\d)(?P<outside>{OUTSIDE})?)?\)$")


def fmt(v: float | None, signed: bool = False, absent: str = MISSING) -> str:
    if v is None:
        return absent
    text = f"{v:+.1f}" if signed else f"{v:.1f}"
    return {"-0.0": "+0.0" if signed else "0.0"}.get(text, text)


label = label_of


def outside(cell: Cell) -> str:
    return NOT_IN_PAPER if cell.interval is None or cell.paper is None else "yes" if cell.outside else "no"


def cell_fields(key: str, cell: Cell) -> dict[str, str]:
    lo, hi = cell.interval or (None, None)
    return {key: fmt(cell.value, cell.derived), f"{key}_n": str(cell.n), f"{key}_lo": fmt(lo, cell.derived, NOT_IN_PAPER),
            f"{key}_hi": fmt(hi, cell.derived, NOT_IN_PAPER), f"{key}_paper": fmt(cell.paper, cell.derived, NOT_IN_PAPER),
            f"{key}_diff": fmt(cell.diff, True, NOT_IN_PAPER), f"{key}_outside": outside(cell)}


def table_rows(result: TableResult) -> list[dict[str, str]]:
    out = []
    for r, info, cells in result.rows:
        line = dict(zip(result.table.key_columns, r.key)) | info
        for key, cell in cells.items():
            line |= cell_fields(key, cell)
        out.append(line)
    return out


def to_csv(rows: list[dict], fieldnames: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def runs_rows(result: TableResult) -> list[dict]:
    out = []
    for r, key, cell in result.cells():
        for c in cell.contributions:
            out.append({
                "row": label(r), "column": key, "run_id": c.run.run_id, "value": repr(c.value), "weight": repr(c.weight),
                "config_hash": c.run.config_hash, "recorded_at": c.run.recorded_at, "git_commit": c.run.git_commit,
                "seed": c.run.seed, **c.run.axes})
    return out


def markdown_cell(fields: dict[str, str], key: str) -> str:
    value, n, paper, diff = fields[key], int(fields[f"{key}_n"]), fields[f"{key}_paper"], fields[f"{key}_diff"]
    count = f" ×{n}" if n > 1 else ""
    span = "" if fields[f"{key}_lo"] == NOT_IN_PAPER else f" [{fields[f'{key}_lo']}, {fields[f'{key}_hi']}]"
    mark = OUTSIDE if fields[f"{key}_outside"] == "yes" else ""
    return f"{value}{count}{span} ({paper}{'' if diff == NOT_IN_PAPER else ', ' + diff + mark})"


def to_markdown(result: TableResult) -> str:
    t = result.table
    label_columns = [*t.key_columns, *t.info_columns]
    head = [*label_columns, *(c.key for c in t.columns)]
    lines = [f"# {t.title}", "",
             f"Base model `{result.model}`, main evaluation suite `{result.suite}`. Each cell: reproduced value "
             f"[95% bootstrap interval over the items, and over the runs when there are several] "
             f"(paper, reproduced - paper; {OUTSIDE}: the paper's number lies outside the interval); ×n: the mean of n "
             f"runs of the cell's recipe (for a difference, the runs on both sides); `{MISSING}`: no run yet; "
             f"`{NOT_IN_PAPER}`: not in the paper. No interval: a run behind the cell has no item scores.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fields in table_rows(result):
        lines.append("| " + " | ".join([*(fields[c] for c in label_columns),
                                        *(markdown_cell(fields, c.key) for c in t.columns)]) + " |")
    return "\n".join(lines + ["", *variants_section(result), *provenance_footer(result)]) + "\n"


def variants_rows(result: TableResult) -> list[dict]:
    return [{"row": label(v.row), "run_id": v.run.run_id, "changes": "; ".join(v.changes),
             **{c.key: fmt(v.values.get(c.key), absent="-") for c in result.table.columns}} for v in result.variants]


def variants_section(result: TableResult) -> list[str]:
    """Runs of a row's axes whose configuration is not the row's recipe: listed with what they change, not averaged."""
    if not result.variants:
        return []
    columns = [c.key for c in result.table.columns]
    lines = ["## Variants (not in the cells above)", "",
             "Runs of a row's axes whose configuration differs from the paper's recipe for the row, in the fields shown.",
             "", "| row | run | changes | " + " | ".join(columns) + " |", "|" + "---|" * (3 + len(columns))]
    for v in variants_rows(result):
        lines.append(f"| {v['row']} | {v['run_id']} | {v['changes']} | " + " | ".join(v[c] for c in columns) + " |")
    return lines + [""]


def provenance_footer(result: TableResult) -> list[str]:
    runs, filled = {}, {}
    for r, key, cell in result.cells():
        for c in cell.contributions:
            runs[c.run.run_id] = c.run
            filled.setdefault(c.run.run_id, {}).setdefault(label(r), []).append(key)
    if not runs:
        return ["No run fills a cell yet."]
    lines = ["## Runs behind the cells", "", "| run | config hash | recorded | git commit | seed | cells |",
             "|---|---|---|---|---|---|"]
    all_columns = [c.key for c in result.table.columns]
    for run_id in sorted(runs):
        run = runs[run_id]
        cells = "; ".join(label if cols == all_columns else f"{label} [{', '.join(cols)}]"
                          for label, cols in filled[run_id].items())
        lines.append(f"| {run_id} | {run.config_hash} | {run.recorded_at} | {run.git_commit} | {run.seed} | {cells} |")
    return lines


def parse_markdown(text: str) -> list[dict[str, str]]:
    """The first table of a report's Markdown, as the rows of its CSV."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    block = lines[start:end]
    head = [h.strip() for h in block[0].strip("|").split("|")]
    out = []
    for line in block[2:]:
        fields = {}
        for h, v in zip(head, (v.strip() for v in line.strip("|").split("|"))):
            m = CELL_RE.match(v)
            fields |= {h: v} if not m else {
                h: m["value"], f"{h}_n": m["n"] or ("0" if m["value"] == MISSING else "1"),
                f"{h}_lo": m["lo"] or NOT_IN_PAPER, f"{h}_hi": m["hi"] or NOT_IN_PAPER,
                f"{h}_paper": m["paper"], f"{h}_diff": m["diff"] or NOT_IN_PAPER,
                f"{h}_outside": "yes" if m["outside"] else "no" if m["lo"] and m["diff"] else NOT_IN_PAPER}
        out.append(fields)
    return out


def write(result: TableResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    t = result.table
    rows = table_rows(result)
    runs_header = ["row", "column", "run_id", "value", "weight", "config_hash", "recorded_at", "git_commit",
                   "seed", *AXES]
    files = {out / f"{t.name}.csv": to_csv(rows, list(rows[0])), out / f"{t.name}.md": to_markdown(result),
             out / f"{t.name}_runs.csv": to_csv(runs_rows(result), runs_header),
             out / f"{t.name}_variants.csv": to_csv(variants_rows(result),
                                                    ["row", "run_id", "changes", *(c.key for c in t.columns)])}
    for path, text in files.items():
        write_atomic(path, text)
    return list(files)
