"""95% bootstrap intervals over a benchmark's items, propagated to categories and the Average, and over seeds.

A run's draws: for each benchmark with an item table (harness.eval.items), RESAMPLES resamples of its items, with
replacement, within each of its groups (MMLU subject, BBH task ...: every group keeps its size); the benchmark's
statistic on each resample. The generator of a benchmark is numpy's `default_rng([seed, crc32(benchmark key),
stream])`, and for each group in sorted order it draws `integers(0, n_group, size=(RESAMPLES, n_group))`: the same
benchmark key and seed give the same resamples in every run, so two runs that scored the same items (same data digest
and item ids) are resampled identically: their difference is *paired*. A run compared with items that differ is
drawn from stream 1 instead: *unpaired* (independent resamples). Resample b of a category is the mean of its
benchmarks' resample b, of the Average the mean of the six categories' (the paper's aggregation), so each benchmark's
items are resampled once and every aggregate moves with them.

Several runs of one recipe (seeds) in one report cell: resample b draws as many runs, with replacement, and averages
their resample b (items and seeds both resampled; the items shared by the runs are resampled together).

The interval is the percentile interval: numpy's percentile (linear interpolation) at 2.5 and 97.5 of the draws.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
import numpy as np

from harness.config.schema import CATEGORIES
from harness.eval.items import positions, statistic
from harness.report.grid import CATEGORIES_MEAN

RESAMPLES = 1000
SEED = 0
LEVEL = 95.0
PAIRED, UNPAIRED, MIXED = "paired", "unpaired", "mixed"


def rng(seed: int, key: str, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode()), stream])


def draw(table: dict, key: str, resamples: int = RESAMPLES, seed: int = SEED, stream: int = 0) -> np.ndarray:
    """The benchmark's statistic on `resamples` resamples of its items (the procedure in the module docstring)."""
    gen = rng(seed, key, stream)
    picks = [p[gen.integers(0, len(p), size=(resamples, len(p)))] for p in positions(table)]
    return statistic(table, picks)


def interval(draws: np.ndarray | None) -> tuple[float, float] | None:
    if draws is None:
        return None
    lo, hi = np.percentile(draws, [(100 - LEVEL) / 2, 100 - (100 - LEVEL) / 2])
    return float(lo), float(hi)


def usable(table: dict | None) -> bool:
    return bool(table) and "error" not in table


def pairable(a: dict | None, b: dict | None) -> bool:
    """Both runs scored the same items: the same data and the same item ids, in the same groups."""
    return usable(a) and usable(b) and a["data"] == b["data"] and a["ids"] == b["ids"] and a["group"] == b["group"]


def aggregate(bench: dict[str, np.ndarray | None], categories: dict[str, str]) -> dict[str, np.ndarray | None]:
    """eval/<key>, category/<name>, average from per-benchmark draws (None where a benchmark has none): a category
    only when every benchmark the run has in it has draws, the Average only with all six categories."""
    out: dict[str, np.ndarray | None] = {f"eval/{k}": v for k, v in bench.items()}
    by_category: dict[str, list] = {}
    for key, cat in categories.items():
        by_category.setdefault(cat, []).append(bench.get(key))
    for cat, draws in by_category.items():
        if cat in CATEGORIES:
            out[f"category/{cat}"] = None if any(d is None for d in draws) else np.mean(draws, axis=0)
    cats = [out.get(f"category/{c}") for c in CATEGORIES]
    out["average"] = None if any(c is None for c in cats) else np.mean(cats, axis=0)
    present = [c for c in cats if c is not None]
    # the mean of the categories a run has (best-of-N's subset of the suite)
    complete = all(f"category/{c}" not in out or out[f"category/{c}"] is not None for c in CATEGORIES)
    out[CATEGORIES_MEAN] = np.mean(present, axis=0) if present and complete else None
    return out


def run_draws(items: dict[str, dict] | None, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, np.ndarray | None]:
    """Metric -> draws of one run (its own resamples, stream 0); empty for a run without item tables."""
    if not items:
        return {}
    bench = {k: draw(t, k, resamples, seed) if usable(t) else None for k, t in items.items()}
    return aggregate(bench, {k: t.get("category") for k, t in items.items()})


@dataclass
class Difference:
    """run - baseline on one metric: the point difference, its 95% interval (None without items), how paired."""

    value: float | None
    interval: tuple[float, float] | None
    pairing: str | None


def differences(run: dict, baseline: dict, run_scores: dict, base_scores: dict, resamples: int = RESAMPLES,
                seed: int = SEED) -> dict[str, Difference]:
    """Metric -> Difference of a run against a baseline, from the item tables and the recorded scores of each.
    Each run's categories and Average are aggregated over all of its own benchmarks, as recorded."""
    run, baseline = run or {}, baseline or {}
    paired = {k: pairable(run[k], baseline[k]) for k in run if k in baseline}
    a = {k: draw(t, k, resamples, seed) if usable(t) else None for k, t in run.items()}
    b = {k: draw(t, k, resamples, seed, stream=0 if paired.get(k) else 1) if usable(t) else None
         for k, t in baseline.items()}
    da = aggregate(a, {k: t.get("category") for k, t in run.items()})
    db = aggregate(b, {k: t.get("category") for k, t in baseline.items()})
    members: dict[str, set] = {}
    for k, t in (*run.items(), *baseline.items()):
        overall = ("average", CATEGORIES_MEAN) if t.get("category") in CATEGORIES else ()
        for metric in (f"eval/{k}", f"category/{t.get('category')}", *overall):
            members.setdefault(metric, set()).add(k)
    out = {}
    for metric in sorted(set(run_scores) & set(base_scores)):
        x, y = run_scores[metric], base_scores[metric]
        value = None if x is None or y is None else x - y
        draws = None if da.get(metric) is None or db.get(metric) is None else da[metric] - db[metric]
        kinds = {paired.get(k, False) for k in members.get(metric, ())}
        pairing = None if draws is None else (PAIRED if kinds == {True} else UNPAIRED if kinds == {False} else MIXED)
        out[metric] = Difference(value, interval(draws), pairing)
    return out


def cell_draws(per_run: list[np.ndarray], key: str, seed: int = SEED) -> np.ndarray:
    """Draws of the mean over several runs of one recipe: each resample draws the runs with replacement."""
    if len(per_run) == 1:
        return per_run[0]
    stacked = np.stack(per_run)
    k, resamples = stacked.shape
    pick = rng(seed, key, stream=2).integers(0, k, size=(resamples, k))
    return stacked[pick, np.arange(resamples)[:, None]].mean(1)
