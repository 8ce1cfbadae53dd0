"""The paper's aggregation: each category is the mean of its benchmarks; the Average is the mean of the six
categories (not of the benchmarks). All on 0-100, higher is better (protocol, "Categories and the Average").
A benchmark beyond the paper names a category of its own (harness.checks.check_category): such categories are
reported apart (`beyond_paper`) and never enter the Average."""

from __future__ import annotations

from statistics import mean

from harness.config.schema import CATEGORIES, REWARD_MODEL_CATEGORY


def category_scores(scores: dict[str, float], category_of: dict[str, str], expected: dict[str, list[str]] | None = None,
                    categories: tuple[str, ...] | list[str] = CATEGORIES) -> dict:
    """Category -> mean of its benchmark scores, only when every benchmark the suite assigns to it was scored.

    `scores`: benchmark key -> score; `category_of`: benchmark key -> category; `expected`: category -> the
    benchmark keys the suite has for it (default: derived from `category_of`). Missing categories are None.
    """
    expected = expected or {}
    if not expected:
        for bench, cat in category_of.items():
            expected.setdefault(cat, []).append(bench)
    out = {}
    for cat in categories:
        benches = expected.get(cat, [])
        out[cat] = mean(scores[b] for b in benches) if benches and all(scores.get(b) is not None for b in benches) else None
    return out


def beyond_paper(scores: dict[str, float], category_of: dict[str, str]) -> dict:
    """Category of its own -> mean of its benchmark scores (None unless all were scored): reported apart."""
    own = {c for c in category_of.values() if c not in CATEGORIES and c != REWARD_MODEL_CATEGORY}
    return category_scores(scores, category_of, categories=sorted(own))


def average(categories: dict[str, float | None]) -> float | None:
    """Mean of the six categories; None unless all six are present (as the paper leaves Llama 2 base blank)."""
    values = [categories.get(c) for c in CATEGORIES]
    return mean(values) if all(v is not None for v in values) else None
