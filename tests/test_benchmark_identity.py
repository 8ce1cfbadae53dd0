"""What a benchmark's name and category promise: the name carries its regime (two regimes never share a name), and
only the paper's benchmarks join the paper's six categories; any other names a category of its own, reported apart
and kept out of the Average."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose
from harness.checks import check
from harness.config.errors import ConfigError
from harness.config.groups import options
from harness.eval.categories import average, beyond_paper, category_scores
from harness.records.results import summary_table

# The settings that change what a benchmark's number means: its sample, its metric, how it samples, who judges.
REGIME = ("limit", "skip_first", "subsets", "metric", "num_fewshot", "generation.num_samples", "generation.temperature")


def regime(bench) -> tuple:
    judges = {role: (j.kind, j.model) for role, j in bench.judges.items()}
    return (*(OmegaConf.select(bench, key) for key in REGIME), sorted(judges.items()))


def every_suite():
    """Every suite as runs compose it: each conf/eval entry, at the paper's scale and at the tiny grid's."""
    for suite in options("eval"):
        for scale in ("paper", "tiny"):
            yield f"eval={suite} scale={scale}", compose(f"eval={suite}", f"scale={scale}").eval


def test_two_regimes_never_share_a_benchmark_name():
    seen: dict[str, tuple[str, tuple]] = {}
    clashes = []
    for where, suite in every_suite():
        for key, bench in suite.benchmarks.items():
            first = seen.setdefault(bench.name, (where, regime(bench)))
            if first[1] != regime(bench):
                clashes.append(f"{bench.name}: {first[0]} {first[1]} != {where} {regime(bench)}")
    assert not clashes, "\n".join(clashes)
    assert seen["gsm8k_8shot_cot_200"][1][0] == 200  # the paper's regime keeps the paper's name
    assert seen["gsm8k_8shot_cot_2"][1][0] == 2  # the smoke suite's two problems say so


def test_a_new_benchmark_cannot_silently_join_a_paper_category():
    extra = "+eval/benchmark@eval.benchmarks.gsm8k_hard=gsm8k"  # a copy of GSM8k's entry: category reasoning
    with pytest.raises(ConfigError, match=r"benchmark 'gsm8k_hard' has category 'reasoning', one of the paper's six, "
                                          r"whose benchmarks are \['gsm8k', 'bbh'\].*a category of its own"):
        check(compose("eval=smoke", extra))
    check(compose("eval=smoke", extra, "eval.benchmarks.gsm8k_hard.category=arithmetic"))  # its own: accepted
    with pytest.raises(ConfigError, match="category 'reward_model' is for the benchmarks that score the reward model"):
        check(compose("eval=smoke", extra, "eval.benchmarks.gsm8k_hard.category=reward_model"))
    with pytest.raises(ConfigError, match="nor a lowercase name of its own"):
        check(compose("eval=smoke", extra, "eval.benchmarks.gsm8k_hard.category=Hard Math"))


def test_a_category_of_its_own_is_reported_apart_and_kept_out_of_the_average():
    scores = {"mmlu": 50.0, "gsm8k": 40.0, "bbh": 20.0, "humaneval_plus": 10.0, "mbpp_plus": 30.0, "truthfulqa": 60.0,
              "toxigen": 90.0, "xstest": 70.0, "alpaca_eval1": 5.0, "alpaca_eval2": 15.0, "ifeval": 25.0, "arith": 99.0}
    category_of = {k: c for c, keys in
                   {"factuality": ["mmlu"], "reasoning": ["gsm8k", "bbh"], "coding": ["humaneval_plus", "mbpp_plus"],
                    "truthfulness": ["truthfulqa"], "safety": ["toxigen", "xstest"],
                    "inst_following": ["alpaca_eval1", "alpaca_eval2", "ifeval"], "arithmetic": ["arith"]}.items()
                   for k in keys}
    categories = category_scores(scores, category_of)
    assert set(categories) == {"factuality", "reasoning", "coding", "truthfulness", "safety", "inst_following"}
    assert categories["reasoning"] == 30.0 and average(categories) == pytest.approx((50 + 30 + 20 + 60 + 80 + 15) / 6)
    assert beyond_paper(scores, category_of) == {"arithmetic": 99.0}
    result = {"run_id": "r", "config_hash": "h", "stages": {}, "result_path": "p", "average": average(categories),
              "benchmarks": {k: {"score": v, "category": category_of[k]} for k, v in scores.items()},
              "categories": categories, "categories_beyond_paper": beyond_paper(scores, category_of)}
    assert "beyond the paper (not in the Average): arithmetic 99.0" in summary_table(result)
