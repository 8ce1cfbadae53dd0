"""Cells hold one recipe: the recipe of a cell is the default composition of its axes (harness/report/recipe.py),
which the runs of the paper's sweeps are, so they fill their cells with no variant; a run that differs is a variant
with the fields it changes. Pure config: no run."""

from __future__ import annotations

from harness.config.compose import compose
from harness.records.identity import axes_of, determining_config, identity
from harness.report import grid, recipe
from harness.report.build import Context, build
from harness.report.runs import RunRecord
from harness.sweep.plan import sweep_jobs

METRICS = {f"category/{c}": 50.0 for c in grid.CATEGORIES} | {"average": 50.0, "eval/gsm8k": 50.0,
                                                               "eval/alpaca_eval2": 50.0, "eval/rewardbench": 50.0}


def record(cfg, run_id: str | None = None) -> RunRecord:
    run_id = run_id or identity(cfg)[1]
    return RunRecord(run_id, axes_of(cfg), METRICS, run_id, "2026-12-06", "abc", cfg.seed, config=determining_config(cfg))


def kinds_of_run(jobs: list[list[str]]) -> list[list[str]]:
    """One job of each kind in a sweep: per algorithm, suite, Table 2 switch and stand-in model (every way a recipe
    is composed), rather than all 59 (a compose each)."""
    seen, out = set(), []
    for job in jobs:
        kind = tuple(sorted(o for o in job if o.split("=")[0] in ("algorithm", "eval", "algorithm.table2")))
        kind += (any(o.startswith("model=") and o != "model=tiny" for o in job),)
        if kind not in seen:
            seen.add(kind)
            out.append(job)
    return out


def test_the_runs_of_the_tiny_grid_sweep_are_the_recipes_of_their_cells():
    runs = [record(compose(job)) for job in kinds_of_run(sweep_jobs("tiny_all"))]
    assert len(runs) >= 7
    ctx = Context("tiny", "tiny_grid", "tiny")
    filling = set()
    for table in (*grid.TABLES, *grid.FIGURES):
        result = build(table, runs, "tiny", "tiny_grid", ctx)
        assert result.variants == [], (table.name, [(v.run.run_id, v.changes) for v in result.variants])
        filling |= {c.run.run_id for _, _, cell in result.cells() for c in cell.contributions}
    assert filling == {r.run_id for r in runs}
    # one field changed: the run leaves its cells for the variants, named by what it changed
    dpo = compose(["scale=tiny", "model=tiny", "eval=tiny_grid", "algorithm=dpo", "dataset=prm800k"])
    changed = dpo.copy()
    changed.algorithm.beta, changed.algorithm.learning_rate, changed.seed = 0.5, 0.001, 7
    variant = record(changed, "variant")
    result = build(grid.TABLE1, [variant], "tiny", "tiny_grid", ctx)
    assert [(v.run.run_id, label, v.changes) for v in result.variants for label in v.row.key] == [
        ("variant", "PRM800k", ["algorithm.beta=0.5", "algorithm.learning_rate=0.001"])]  # the seed is no change
    assert all(cell.value is None for _, _, cell in result.cells())


def test_a_change_names_fields_either_side_lacks():
    assert recipe.changes({"a": {"b": 1, "c": [1, 2]}, "seed": 1}, {"a": {"b": 1, "c": [1, 3], "d": None}, "seed": 2}) \
        == ["a.c=[1, 2]", "a.d=<absent>"]
    assert recipe.changes({"eval": {"backend": "vllm", "seed": 3, "placement": {"device_map": "auto"}}},
                          {"eval": {"backend": "hf", "seed": None, "placement": {"device_map": None}}}) == []
