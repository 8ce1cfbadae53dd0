"""Fill the grid's cells from run records, beside the paper's numbers.

A cell's value is the sum over its terms of weight x (mean of the metric over the runs of the cell's recipe the term's
selector matches); it is missing when any term matches no such run that has the metric. A run the selector matches
whose configuration differs from the recipe (harness.report.recipe) is a variant of the row, listed, never averaged
in. The cell's 95% interval resamples the items of every run behind it, and the runs (seeds) when there are several
(harness.report.bootstrap). The paper's numbers come from the project's copy of the paper's tables
(harness/assets/paper_tables/).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from statistics import mean

import numpy as np

from harness.report import bootstrap, recipe
from harness.report.grid import BASE, BY_NAME, CATEGORIES_MEAN, MAIN, Row, Table, Term, cell_terms, matches, played_by
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
    # 95% bootstrap interval of the value; None when a run behind it has no item scores (or the cell is missing).
    interval: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        """Runs behind the value (0 when missing)."""
        return len({c.run.run_id for c in self.contributions})

    @property
    def diff(self) -> float | None:
        return None if self.value is None or self.paper is None else self.value - self.paper

    @property
    def outside(self) -> bool:
        """The paper's number lies outside the reproduced value's 95% interval."""
        return self.paper is not None and self.interval is not None and not (
            self.interval[0] <= self.paper <= self.interval[1])


@dataclass
class Variant:
    """A run matching a row's axes with another configuration than the row's recipe."""

    run: RunRecord
    row: Row
    changes: list[str]
    # Column key -> the run's own value of the column's metric (only columns whose selector it matches).
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class TableResult:
    table: Table
    model: str
    suite: str
    # One entry per row: (row, the paper's info cells, column key -> cell).
    rows: list[tuple[Row, dict[str, str], dict[str, Cell]]]
    variants: list[Variant] = field(default_factory=list)

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


class Context:
    """What building a table needs besides its runs: the grid's base model, main suite and scale, and the draws of
    each run (computed once per report: every table reads them)."""

    def __init__(self, model: str, suite: str, scale: str = "paper", resamples: int = bootstrap.RESAMPLES,
                 seed: int = bootstrap.SEED):
        self.model, self.suite, self.scale, self.resamples, self.seed = model, suite, scale, resamples, seed
        self._draws: dict[str, dict] = {}
        self._recipes: dict[tuple, dict | None] = {}

    def draws(self, run: RunRecord) -> dict:
        if run.run_id not in self._draws:
            self._draws[run.run_id] = bootstrap.run_draws(run.items(), self.resamples, self.seed)
        return self._draws[run.run_id]

    def recipe(self, term: Term) -> dict | None:
        key = (tuple(sorted(term.select.items())), term.overrides)
        if key not in self._recipes:
            resolved = {k: (self.model if v == BASE else self.suite if v == MAIN else v) for k, v in term.select.items()}
            if "model" in resolved:
                resolved["model"] = played_by(resolved["model"], self.model)
            self._recipes[key] = recipe.recipe(recipe.overrides(resolved, term.overrides, self.scale))
        return self._recipes[key]


def split_recipe(term: Term, runs: list[RunRecord], ctx: Context) -> tuple[list[RunRecord], dict[str, list[str]]]:
    """The runs of the term's recipe, and run id -> changes of the others (a run with no recorded configuration, or a
    term whose recipe does not compose, is kept by its axes alone)."""
    kept, variants = [], {}
    for run in runs:
        want = ctx.recipe(term) if run.config is not None else None
        changed = recipe.changes(run.config, want) if want is not None else []
        if changed:
            variants[run.run_id] = changed
        else:
            kept.append(run)
    return kept, variants


def build_cell(table: Table, r: Row, column, runs: list[RunRecord], ctx: Context,
               variants: dict[str, Variant]) -> Cell:
    terms = cell_terms(r, column)
    paper = paper_value(table, r, column.key)
    contributions, value, draws = [], 0.0, []
    for i, term in enumerate(terms):
        candidates = [run for run in runs if matches(term.select, run.axes, ctx.model, ctx.suite)]
        kept, changed = split_recipe(term, candidates, ctx)
        for run in candidates:  # listed from plain cells (a difference's terms are other rows' cells)
            if len(terms) == 1 and run.run_id in changed and (v := metric_value(run, column.metric)) is not None:
                variant = variants.setdefault(f"{run.run_id}|{label_of(r)}", Variant(run, r, changed[run.run_id]))
                variant.values[column.key] = v
        matched = distinct([(run, v) for run in kept if (v := metric_value(run, column.metric)) is not None])
        if not matched:
            return Cell(None, paper, derived=len(terms) > 1)
        value += term.weight * mean(v for _, v in matched)
        contributions += [Contribution(run, term.weight, v) for run, v in matched]
        per_run = [ctx.draws(run).get(column.metric) for run, _ in matched]
        draws.append(None if any(d is None for d in per_run) else
                     term.weight * bootstrap.cell_draws(per_run, f"{table.name}|{label_of(r)}|{column.key}|{i}", ctx.seed))
    total = None if any(d is None for d in draws) else np.sum(draws, axis=0)
    return Cell(value, paper, contributions, derived=len(terms) > 1, interval=bootstrap.interval(total))


def label_of(r: Row) -> str:
    return " / ".join(k for k in r.key if k)


def build(table: Table, runs: list[RunRecord], model: str, suite: str, ctx: Context | None = None) -> TableResult:
    ctx = ctx or Context(model, suite)
    rows, variants = [], {}
    for r in table.rows:
        info = {c: paper_rows(table.name)[r.key][c] for c in table.info_columns}
        rows.append((r, info, {c.key: build_cell(table, r, c, runs, ctx, variants) for c in table.columns}))
    return TableResult(table, model, suite, rows, sorted(variants.values(), key=lambda v: (v.run.run_id, label_of(v.row))))
