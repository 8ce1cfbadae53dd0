"""Fill the grid's cells from run records, beside the paper's numbers.

A cell's value is the sum over its terms of weight x (mean of the metric over the runs the term's selector matches);
it is missing when any term matches no run that has the metric. The paper's numbers come from the project's copy of
the paper's tables (harness/assets/paper_tables/).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from statistics import mean

from harness.report.grid import BY_NAME, CATEGORIES_MEAN, Row, Table, cell_terms, matches
from harness.report.runs import RunRecord
from harness.config.schema import CATEGORIES

PAPER_DIR = Path(__file__).resolve().parent.parent / "assets" / "paper_tables"


@dataclass(frozen=True)
class Contribution:
    """One run's part in a cell: its value of the cell's metric and the weight of the term it matched."""

    run: RunRecord
    weight: float
    value: float


@dataclass
class Cell:
    value: float | None
    paper: float | None
    contributions: list[Contribution] = field(default_factory=list)
    # A difference of means (Table 2's average delta, Table 3's gain over SFT): shown with a sign.
    derived: bool = False

    @property
    def n(self) -> int:
        """Runs behind the value (0 when missing)."""
        return len({c.run.run_id for c in self.contributions})

    @property
    def diff(self) -> float | None:
        return None if self.value is None or self.paper is None else self.value - self.paper


@dataclass
class TableResult:
    table: Table
    model: str
    suite: str
    # One entry per row: (row, the paper's info cells, column key -> cell).
    rows: list[tuple[Row, dict[str, str], dict[str, Cell]]]

    def cells(self):
        for r, _, cells in self.rows:
            for key, cell in cells.items():
                yield r, key, cell


def metric_value(run: RunRecord, metric: str) -> float | None:
    if metric == CATEGORIES_MEAN:
        present = [run.metrics[f"category/{c}"] for c in CATEGORIES if f"category/{c}" in run.metrics]
        return mean(present) if present else None
    return run.metrics.get(metric)


def paper_number(text: str | None) -> float | None:
    text = (text or "").strip()
    return float(text) if text and text != "-" else None


@cache
def paper_rows(table_name: str) -> dict[tuple[str, ...], dict[str, str]]:
    """The paper's table as {row key: {column: text}}."""
    table = BY_NAME[table_name]
    with open(PAPER_DIR / table.paper_csv, newline="") as f:
        return {tuple(r[k] for k in table.key_columns): r for r in csv.DictReader(f)}


def paper_value(table: Table, r: Row, column: str) -> float | None:
    if table.paper_csv:
        return paper_number(paper_rows(table.name)[r.key].get(column))
    if column in r.paper:
        other, key, col = r.paper[column]
        return paper_number(paper_rows(other)[key][col])
    return None


def distinct(matched: list[tuple[RunRecord, float]]) -> list[tuple[RunRecord, float]]:
    """One entry per set of stages: seeds that no stage reads (e.g. the SFT model's greedy evaluation) are one run."""
    seen, out = set(), []
    for run, value in matched:
        key = run.stages or run.run_id
        if key not in seen:
            seen.add(key)
            out.append((run, value))
    return out


def build_cell(table: Table, r: Row, column, runs: list[RunRecord], model: str, suite: str) -> Cell:
    terms = cell_terms(r, column)
    paper = paper_value(table, r, column.key)
    contributions, value = [], 0.0
    for term in terms:
        matched = distinct([(run, v) for run in runs if matches(term.select, run.axes, model, suite)
                            and (v := metric_value(run, column.metric)) is not None])
        if not matched:
            return Cell(None, paper, derived=len(terms) > 1)
        value += term.weight * mean(v for _, v in matched)
        contributions += [Contribution(run, term.weight, v) for run, v in matched]
    return Cell(value, paper, contributions, derived=len(terms) > 1)


def build(table: Table, runs: list[RunRecord], model: str, suite: str) -> TableResult:
    rows = []
    for r in table.rows:
        info = {c: paper_rows(table.name)[r.key][c] for c in table.info_columns}
        rows.append((r, info, {c.key: build_cell(table, r, c, runs, model, suite) for c in table.columns}))
    return TableResult(table, model, suite, rows)
