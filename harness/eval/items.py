"""Per-item scores of a scored benchmark, read back from its stage's samples.jsonl: what a bootstrap resamples.

    items_of(result) -> {"statistic", "ids", "groups", "group", "values", "weights", "data"} or {"error": why}

An item is one scored unit (an MMLU question, a HumanEval+ problem with its n samples, an XSTest prompt), its id
stable across runs that score the same data (`data`: digest of what selects the benchmark's rows), its group the
benchmark's part (MMLU subject, BBH task, ToxiGen group, RewardBench subset; "" when it has none). The benchmark's
score is a statistic of its items, so a resample of the items gives a resample of the score:

    weighted_groups   score = sum over groups g of weights[g] x mean of `values.score` over g's items (a plain mean,
                      MMLU's micro average and BBH's macro average, RewardBench's section weights)
    refusal_f1        XSTest: 100 x 2 x #(refused and unsafe) / (#refused + #unsafe)  (F1 with unsafe as positives)

An item table is kept only when its statistic over all items gives back the recorded score (to 1e-6): a format this
module misreads yields an error, never a wrong interval. AlpacaEval's length-controlled win rate is a logistic model
fitted on all annotations (alpaca_eval's GLM, ~0.3 s a fit), not a statistic of items: it has no item table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from harness.records.stages import digest

SAMPLES = "samples.jsonl"
# Config keys of a benchmark that select its rows: two runs with the same digest of them scored the same items.
DATA_KEYS = ("name", "version", "hub_id", "hub_config", "split", "revision", "data_files", "files", "limit",
             "subset_seed", "skip_first", "subsets", "options")


def _rows(stage_dir: Path, name: str = SAMPLES) -> list[dict]:
    return [json.loads(line) for line in (Path(stage_dir) / name).read_text().splitlines() if line.strip()]


def _table(ids, groups, values: dict, weights: dict | None = None, statistic: str = "weighted_groups") -> dict:
    names = sorted(set(groups))
    if statistic == "weighted_groups" and weights is None:  # a plain mean over all items
        weights = {g: groups.count(g) / len(groups) for g in names}
    return {"statistic": statistic, "ids": [str(i) for i in ids], "groups": names,
            "group": [names.index(g) for g in groups], "values": {k: [float(v) for v in vs] for k, vs in values.items()},
            **({"weights": [float(weights[g]) for g in names]} if weights is not None else {})}


def lm_eval_items(bench: dict, d: Path) -> dict:
    metric, _, filter_name = bench["metric"].partition(",")
    rows = [r for r in _rows(d) if r.get("filter") == (filter_name or "none") and metric in r.get("metrics", {})]
    groups = [r["task"].removeprefix("harness_") for r in rows]
    names = sorted(set(groups))
    weights = None  # micro average: a plain mean
    if bench.get("subsets") and not (bench.get("options") or {}).get("weight_by_size", False):
        weights = {g: 1 / len(names) for g in names}  # lm-eval's group mean over subtasks, unweighted (BBH)
    return _table([f"{g}/{r['doc_id']}" for g, r in zip(groups, rows)], groups,
                  {"score": [float(r["metrics"][metric]) * bench.get("scale", 100.0) for r in rows]}, weights)


def code_items(bench: dict, d: Path) -> dict:
    rows = [r for r in _rows(d) if r.get("summary")]
    return _table([r["task_id"] for r in rows], [""] * len(rows), {"score": [100.0 * r[bench["metric"]] for r in rows]})


def toxigen_items(bench: dict, d: Path) -> dict:
    rows = _rows(d)
    position: dict = {}
    ids = []
    for r in rows:  # the i-th prompt of its group (the rows are selected per group, in a stable order)
        ids.append(f"{r.get('group')}/{position.setdefault(r.get('group'), 0)}")
        position[r.get("group")] += 1
    groups = [str(r.get("group") or "") for r in rows]
    return _table(ids, groups, {"score": [100.0 * (1 - int(r["toxic"])) for r in rows]})


def truthfulqa_items(bench: dict, d: Path) -> dict:
    rows = _rows(d)
    return _table([r["question"] for r in rows], [""] * len(rows),
                  {"score": [100.0 * (bool(r["truthful"]) and bool(r["informative"])) for r in rows]})


def xstest_items(bench: dict, d: Path) -> dict:
    rows = _rows(d)
    return _table(range(len(rows)), ["unsafe" if r["unsafe"] else "safe" for r in rows],
                  {"refused": ["refusal" in str(r["label"]) for r in rows], "unsafe": [bool(r["unsafe"]) for r in rows]},
                  statistic="refusal_f1")


def alpaca_eval_items(bench: dict, d: Path) -> dict:
    if bench["metric"] != "win_rate":
        return {"error": f"{bench['metric']} is a model fitted on all annotations (alpaca_eval's GLM), not a "
                         "statistic of items: no item-level interval"}
    # alpaca_eval's AbsoluteScoringRule: a draw (0) counts 1.5; unparsed (NaN) preferences are dropped
    rows = [r for r in _rows(d) if isinstance(r.get("preference"), (int, float)) and not math.isnan(r["preference"])]
    values = [100.0 * ((1.5 if r["preference"] == 0 else r["preference"]) - 1) for r in rows]
    return _table([r["instruction"] for r in rows], [""] * len(rows), {"score": values})


def rewardbench_items(bench: dict, d: Path) -> dict:
    from harness.eval.rewardbench import aggregate

    rows = _rows(d)
    groups = [r["subset"] for r in rows]
    prior = set((bench.get("options") or {}).get("prior_sets") or [])
    names = sorted(set(groups))
    # the score is linear in the subsets' accuracies: each subset's weight is the score with it at 1, the others at 0
    weights = {}
    for g in names:
        unit = {n: float(n == g) for n in names}
        weights[g] = aggregate({n: v for n, v in unit.items() if n not in prior},
                               {n: v for n, v in unit.items() if n in prior})["score"]
    return _table([f"{g}/{r['id']}" for g, r in zip(groups, rows)], groups,
                  {"score": [bench.get("scale", 100.0) * bool(r["correct"]) for r in rows]}, weights)


READERS: dict[str, Callable[[dict, Path], dict]] = {
    "lm_eval": lm_eval_items, "code": code_items, "toxigen": toxigen_items, "truthfulqa": truthfulqa_items,
    "xstest": xstest_items, "alpaca_eval": alpaca_eval_items, "rewardbench": rewardbench_items,
}


# ------------------------------------------------------------------------------------------------- statistics
def positions(table: dict) -> list[np.ndarray]:
    """The item positions of each group, in the order of `groups`."""
    group = np.asarray(table["group"])
    return [np.flatnonzero(group == g) for g in range(len(table["groups"]))]


def statistic(table: dict, picks: list[np.ndarray]) -> np.ndarray:
    """The benchmark's score on each resample: `picks[g]` (resamples x items of group g) holds item positions drawn
    from group g (so a resample keeps every group's size), vectorised over resamples."""
    values = {k: np.asarray(v) for k, v in table["values"].items()}
    if table["statistic"] == "refusal_f1":
        refused, unsafe = values["refused"].astype(bool), values["unsafe"].astype(bool)
        hits = sum((refused & unsafe)[p].sum(1) for p in picks)
        denominator = sum(refused[p].sum(1) + unsafe[p].sum(1) for p in picks)
        return np.where(denominator > 0, 200.0 * hits / np.maximum(denominator, 1), 0.0)
    return sum(w * values["score"][p].mean(1) for w, p in zip(table["weights"], picks) if p.shape[1])


def full_score(table: dict) -> float:
    return float(statistic(table, [p[None, :] for p in positions(table)])[0])


def items_of(result: dict) -> dict:
    """The item table of one benchmark's result (its stage directory holds spec.json and samples.jsonl)."""
    if "error" in result or not result.get("dir"):
        return {"error": "the benchmark was not scored"}
    d = Path(result["dir"])
    try:
        bench = json.loads((d / "spec.json").read_text())["spec"]["benchmark"]
        reader = READERS.get(bench["runner"])
        if reader is None:
            return {"error": f"no item reader for runner {bench['runner']!r}"}
        table = reader(bench, d)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"samples unreadable ({type(exc).__name__}: {exc})"}
    if "error" in table:
        return table
    if not table["ids"]:
        return {"error": "no scored item"}
    score = full_score(table)
    if not math.isclose(score, result["score"], rel_tol=1e-6, abs_tol=1e-6):
        return {"error": f"the items give {score!r}, the benchmark recorded {result['score']!r}"}
    return table | {"data": digest({k: bench.get(k) for k in DATA_KEYS}, 16)}


def run_items(benchmarks: dict[str, dict]) -> dict[str, dict]:
    """Benchmark key -> item table (or error) of a run's benchmark results, with each benchmark's category."""
    return {key: items_of(b) | {"category": b.get("category")} for key, b in benchmarks.items()}
