"""Item scores and bootstrap intervals on fixed per-item scores, against known answers.

The reference here is a plain-Python bootstrap written from the procedure harness/report/bootstrap.py documents (the
generator `default_rng([seed, crc32(key), stream])`, each group in sorted order drawing `integers(0, n, (B, n))`),
with its own group means, category and Average aggregation and its own percentile (linear interpolation between
order statistics); only the random draws are shared, so that the intervals can be compared exactly.
"""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

from harness.config.schema import CATEGORIES
from harness.eval import items as item_tables
from harness.eval.code import pass_at_k
from harness.eval.rewardbench import accuracy_by_subset, aggregate
from harness.eval.xstest import refusal_metrics
from harness.report import bootstrap

B = 400


# ------------------------------------------------------------------------------------------------- the reference
def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q / 100 * (len(s) - 1)
    lo = int(pos)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo)


def reference_draws(values: list[float], groups: list[str], weights: dict[str, float], key: str, seed: int = 0,
                    stream: int = 0, resamples: int = B) -> list[float]:
    gen = np.random.default_rng([seed, zlib.crc32(key.encode()), stream])
    out = [0.0] * resamples
    for g in sorted(set(groups)):
        members = [v for v, h in zip(values, groups) if h == g]
        picks = gen.integers(0, len(members), size=(resamples, len(members)))
        for b in range(resamples):
            out[b] += weights[g] * sum(members[i] for i in picks[b]) / len(members)
    return out


def table(values: list[float], groups: list[str] | None = None, weights: dict | None = None, ids=None,
          category: str = "reasoning", data: str = "d") -> dict:
    groups = groups or [""] * len(values)
    names = sorted(set(groups))
    weights = weights or {g: groups.count(g) / len(groups) for g in names}
    return {"statistic": "weighted_groups", "ids": ids or [str(i) for i in range(len(values))], "groups": names,
            "group": [names.index(g) for g in groups], "values": {"score": values},
            "weights": [weights[g] for g in names], "data": data, "category": category}


# ------------------------------------------------------------------------------------------------- known answers
def test_a_macro_average_interval_equals_the_plain_bootstrap():
    values = [100.0, 0.0, 100.0, 0.0, 0.0, 100.0, 100.0, 100.0]
    groups = ["a", "a", "a", "b", "b", "b", "b", "b"]
    weights = {"a": 0.5, "b": 0.5}  # BBH: the unweighted mean over tasks
    t = table(values, groups, weights)
    assert item_tables.full_score(t) == pytest.approx(0.5 * 200 / 3 + 0.5 * 60)
    ours = bootstrap.draw(t, "bbh", B)
    ref = reference_draws(values, groups, weights, "bbh")
    assert np.allclose(ours, ref)
    assert bootstrap.interval(ours) == pytest.approx((percentile(ref, 2.5), percentile(ref, 97.5)))


def test_two_items_give_the_enumerable_interval():
    # resample means of {0, 100} take 0, 50, 100 with probability 1/4, 1/2, 1/4: the 95% interval is [0, 100]
    assert bootstrap.interval(bootstrap.draw(table([0.0, 100.0]), "x", 2000)) == (0.0, 100.0)
    assert bootstrap.interval(bootstrap.draw(table([40.0]), "x", 50)) == (40.0, 40.0)


def six_category_run(shift: float, ids_suffix: str = "") -> tuple[dict, dict]:
    """Item tables of a run with one benchmark per category (two in reasoning), and its recorded scores."""
    rng = random.Random(7)
    items, scores = {}, {}
    for cat in CATEGORIES:
        for key in ([f"{cat}_a", f"{cat}_b"] if cat == "reasoning" else [cat]):
            values = [float(min(100, max(0, rng.choice([0, 100]) + shift))) for _ in range(6)]
            items[key] = table(values, ids=[f"{i}{ids_suffix}" for i in range(6)], category=cat)
            scores[f"eval/{key}"] = sum(values) / 6
    for cat in CATEGORIES:
        members = [scores[f"eval/{k}"] for k, t in items.items() if t["category"] == cat]
        scores[f"category/{cat}"] = sum(members) / len(members)
    scores["average"] = sum(scores[f"category/{c}"] for c in CATEGORIES) / 6
    return items, scores


def reference_run(items: dict, stream_of=lambda key: 0, resamples: int = B) -> dict[str, list[float]]:
    draws = {k: reference_draws(t["values"]["score"], [""] * len(t["ids"]), {"": 1.0}, k, stream=stream_of(k),
                                resamples=resamples) for k, t in items.items()}
    out = {f"eval/{k}": d for k, d in draws.items()}
    for cat in CATEGORIES:
        members = [draws[k] for k, t in items.items() if t["category"] == cat]
        out[f"category/{cat}"] = [sum(col) / len(col) for col in zip(*members)]
    out["average"] = [sum(col) / 6 for col in zip(*(out[f"category/{c}"] for c in CATEGORIES))]
    return out


def test_paired_differences_propagate_to_categories_and_the_average():
    base_items, base_scores = six_category_run(0.0)
    run_items, run_scores = six_category_run(-30.0)  # same items, every score 30 lower where it can be
    diffs = bootstrap.differences(run_items, base_items, run_scores, base_scores, B)
    a, b = reference_run(run_items), reference_run(base_items)
    for metric in ("eval/coding", "category/reasoning", "average"):
        d = diffs[metric]
        ref = [x - y for x, y in zip(a[metric], b[metric])]
        assert d.pairing == bootstrap.PAIRED
        assert d.value == pytest.approx(run_scores[metric] - base_scores[metric])
        assert d.interval == pytest.approx((percentile(ref, 2.5), percentile(ref, 97.5))), metric
    # a run against itself: every resample differs by exactly 0
    same = bootstrap.differences(base_items, base_items, base_scores, base_scores, B)
    assert all(d.interval == (0.0, 0.0) and d.pairing == bootstrap.PAIRED for d in same.values())


def test_runs_that_scored_other_items_are_resampled_independently():
    base_items, base_scores = six_category_run(0.0)
    run_items, run_scores = six_category_run(0.0, ids_suffix="'")  # other item ids: nothing to pair
    diffs = bootstrap.differences(run_items, base_items, run_scores, base_scores, B)
    a, b = reference_run(run_items), reference_run(base_items, stream_of=lambda key: 1)
    ref = [x - y for x, y in zip(a["average"], b["average"])]
    assert diffs["average"].pairing == bootstrap.UNPAIRED
    assert diffs["average"].interval == pytest.approx((percentile(ref, 2.5), percentile(ref, 97.5)))
    assert diffs["average"].interval[0] < 0 < diffs["average"].interval[1]  # same scores, independent noise
    # one benchmark paired, the rest not: the Average says so
    mixed = dict(run_items, coding=base_items["coding"])
    assert bootstrap.differences(mixed, base_items, run_scores, base_scores, B)["average"].pairing == bootstrap.MIXED


def test_a_benchmark_without_items_leaves_its_aggregates_without_interval():
    base_items, base_scores = six_category_run(0.0)
    broken = dict(base_items, safety={"error": "a fitted model", "category": "safety"})
    diffs = bootstrap.differences(broken, base_items, base_scores, base_scores, B)
    assert diffs["eval/safety"].interval is None and diffs["category/safety"].interval is None
    assert diffs["average"].interval is None and diffs["category/coding"].interval == (0.0, 0.0)


def test_seeds_of_one_recipe_widen_the_cell_interval():
    run_a, run_b = bootstrap.draw(table([50.0] * 4), "x", B), bootstrap.draw(table([70.0] * 4), "x", B)
    assert bootstrap.interval(run_a) == (50.0, 50.0)  # no item noise
    cell = bootstrap.cell_draws([run_a, run_b], "cell")
    lo, hi = bootstrap.interval(cell)
    assert lo == 50.0 and hi == 70.0 and set(np.round(cell, 6)) == {50.0, 60.0, 70.0}  # seed noise alone


# ------------------------------------------------------------------------------------------------- item tables
def stage(tmp_path: Path, bench: dict, rows: list[dict]) -> Path:
    d = tmp_path / bench["name"]
    d.mkdir()
    (d / "spec.json").write_text(json.dumps({"kind": "eval", "spec": {"benchmark": bench}}))
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_item_tables_give_back_each_runners_score(tmp_path):
    rng = random.Random(3)
    # XSTest: refusal F1 (unsafe prompts are the positives)
    labels = [rng.choice(["1_full_compliance", "2_full_refusal", "3_partial_refusal"]) for _ in range(30)]
    unsafe = [rng.random() < 0.4 for _ in range(30)]
    d = stage(tmp_path, {"name": "xs", "runner": "xstest", "metric": "refusal_f1"},
              [{"prompt": str(i), "unsafe": u, "label": y} for i, (u, y) in enumerate(zip(unsafe, labels))])
    f1 = refusal_metrics(labels, unsafe)["refusal_f1"]
    assert item_tables.items_of({"score": f1, "dir": str(d)})["statistic"] == "refusal_f1"
    # RewardBench: section-weighted subset accuracies, a prior set at its own weight
    subsets = ["alpacaeval-easy"] * 5 + ["mt-bench-hard"] * 3 + ["math-prm"] * 4 + ["anthropic_helpful"] * 4
    correct = [rng.random() < 0.6 for _ in subsets]
    bench = {"name": "rb", "runner": "rewardbench", "metric": "score", "scale": 100.0,
             "options": {"prior_sets": ["anthropic_helpful"]}}
    d = stage(tmp_path, bench, [{"id": i, "subset": s, "correct": c} for i, (s, c) in enumerate(zip(subsets, correct))])
    core = [(c, s) for c, s in zip(correct, subsets) if s != "anthropic_helpful"]
    score = 100 * aggregate(accuracy_by_subset([c for c, _ in core], [s for _, s in core]),
                            accuracy_by_subset(correct[-4:], subsets[-4:]))["score"]
    assert "error" not in item_tables.items_of({"score": score, "dir": str(d)})
    # HumanEval+: pass@k per problem from its summary rows
    counts = [rng.randint(0, 4) for _ in range(5)]
    d = stage(tmp_path, {"name": "he", "runner": "code", "metric": "pass@2"},
              [{"task_id": f"HumanEval/{i}", "summary": True, "n": 4, "correct": c, "pass@2": pass_at_k(4, c, 2)}
               for i, c in enumerate(counts)])
    score = 100 * sum(pass_at_k(4, c, 2) for c in counts) / 5
    assert item_tables.items_of({"score": score, "dir": str(d)})["ids"][0] == "HumanEval/0"
    # BBH through lm-eval: the macro average of its tasks, rows of another filter ignored
    rows = [{"task": f"harness_bbh_{t}", "filter": f, "doc_id": i, "metrics": {"exact_match": float(rng.random() < .5)}}
            for t, n in (("x", 3), ("y", 5)) for i in range(n) for f in ("get-answer", "none")]
    kept = [r for r in rows if r["filter"] == "get-answer"]
    score = 100 * sum(sum(r["metrics"]["exact_match"] for r in kept if r["task"].endswith(t)) / n
                      for t, n in (("x", 3), ("y", 5))) / 2
    bench = {"name": "bbh", "runner": "lm_eval", "metric": "exact_match,get-answer", "scale": 100.0,
             "subsets": ["x", "y"], "options": {}}
    assert len(item_tables.items_of({"score": score, "dir": str(stage(tmp_path, bench, rows))})["ids"]) == 8


def test_an_item_table_that_does_not_give_back_the_score_is_refused(tmp_path):
    d = stage(tmp_path, {"name": "tq", "runner": "truthfulqa", "metric": "truth_info"},
              [{"question": "q1", "truthful": True, "informative": True},
               {"question": "q2", "truthful": True, "informative": False}])
    assert item_tables.items_of({"score": 50.0, "dir": str(d)})["ids"] == ["q1", "q2"]
    assert "the items give 50.0, the benchmark recorded 75.0" in item_tables.items_of({"score": 75.0, "dir": str(d)})["error"]
    lc = stage(tmp_path, {"name": "ae2", "runner": "alpaca_eval", "metric": "length_controlled_winrate"}, [])
    assert "not a statistic of items" in item_tables.items_of({"score": 50.0, "dir": str(lc)})["error"]


def test_table_cells_carry_intervals_and_figures_draw_them():
    from matplotlib.container import ErrorbarContainer

    from harness.report import figures, grid
    from harness.report.build import build
    from harness.report.runs import RunRecord

    def run(select: dict, shift: float, items: bool) -> RunRecord:
        tables, scores = six_category_run(shift)
        tables["gsm8k"] = tables.pop("reasoning_a") | {"category": "reasoning"}
        scores["eval/gsm8k"] = scores.pop("eval/reasoning_a")
        axes = {a: "none" for a in grid.AXES} | {"model": "tulu2_13b", "eval_suite": "paper"} | select
        return RunRecord("-".join(axes.values()), axes, scores, "h", "2026-12-06", "abc", 42,
                         load_items=(lambda: tables) if items else (lambda: None))

    with_items = [run(grid.SFT, 0.0, True), run(grid.dpo("ultrafeedback_fg"), -30.0, True)]
    result = build(grid.FIGURE1, with_items + [run(grid.ppo("uf_13b"), 0.0, False)], "tulu2_13b", "paper")
    cells = {(r.key[0], key): cell for r, key, cell in result.cells()}
    sft = cells[("Tulu 2 SFT", "average")]
    expected = reference_run(with_items[0].items(), resamples=bootstrap.RESAMPLES)["average"]  # the report's default
    assert sft.interval == pytest.approx((percentile(expected, 2.5), percentile(expected, 97.5)))
    assert sft.outside == (not sft.interval[0] <= sft.paper <= sft.interval[1])
    assert cells[("PPO (13B UF RM)", "average")].interval is None  # a run without item scores: no interval
    fig = figures.figure1(result)
    bars = [sum(isinstance(c, ErrorbarContainer) for c in ax.containers) for ax in fig.axes[:2]]
    assert bars == [2, 2]  # SFT and DPO on each panel; PPO's bar has none
