"""RewardBench-style reward-model evaluation: RewardBench's aggregation by hand, a hand count on the bundled fixture,
and the score reaching results as eval/rewardbench."""

import json

import pytest
from conftest import compose

from harness.eval import rewardbench
from harness.checks import check
from harness.data.preferences import asset_path
from harness.config.errors import ConfigError
from harness.train.reward import RewardScorer


def test_sections_prior_sets_and_score_by_hand():
    core = {"alpacaeval-easy": 1.0, "mt-bench-easy": 0.5, "llmbar-natural": 0.0, "mt-bench-hard": 1.0,
            "refusals-dangerous": 1.0, "xstest-should-respond": 0.5, "math-prm": 0.5, "hep-python": 1.0}
    prior = {"anthropic_helpful": 0.5, "shp": 1.0}
    out = rewardbench.aggregate(core, prior)
    # sections weight subsets by RewardBench's example counts (alpacaeval-easy 100, mt-bench-easy 28, ...)
    assert out["chat"] == pytest.approx((100 * 1.0 + 28 * 0.5) / 128)
    assert out["chat_hard"] == pytest.approx((100 * 0.0 + 37 * 1.0) / 137)
    assert out["safety"] == pytest.approx((100 * 1.0 + 154 * 0.5) / 254)
    assert out["reasoning"] == pytest.approx((984 * 0.5 + 164 * 1.0) / 1148)  # math-prm counts as 984
    assert out["prior_sets"] == pytest.approx(0.75)
    sections = out["chat"] + out["chat_hard"] + out["safety"] + out["reasoning"]
    assert out["score"] == pytest.approx((2 * sections + 0.75) / 9)  # prior sets at half weight
    assert rewardbench.aggregate(core, {})["score"] == pytest.approx(sections / 4)
    assert rewardbench.accuracy_by_subset([True, False, True], ["a", "a", "b"]) == {"a": 0.5, "b": 1.0}
    with pytest.raises(ValueError, match="no row belongs to a known subset"):
        rewardbench.aggregate({}, {})


def _fixture_rows():
    folder = asset_path("benchmarks/rewardbench")
    core = [json.loads(line) for line in (folder / "filtered.jsonl").read_text().splitlines()]
    prior = {name: [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]
             for name in ("anthropic_helpful", "shp")}
    return core, prior


def test_fixture_accuracy_matches_a_hand_count(tiny_reward_model, tmp_path):
    scorer = RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)
    bench = compose("algorithm=none", "reward_model=tiny", "eval=rewardbench_tiny").eval.benchmarks.rewardbench
    result = rewardbench.run(bench, scorer, tmp_path)

    # the hand count: score every fixture pair directly, count right answers per subset, weigh as RewardBench does
    def right(prompt_turns, chosen, rejected):
        conv = lambda answer: prompt_turns + [{"role": "assistant", "content": answer}]  # noqa: E731
        return bool(scorer.score_conversations([conv(chosen)]) > scorer.score_conversations([conv(rejected)]))

    core, prior = _fixture_rows()
    counts = {}
    for r in core:
        ok = right([{"role": "user", "content": r["prompt"]}], r["chosen"], r["rejected"])
        counts.setdefault(r["subset"], []).append(ok)
    weights = {"chat": {"alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28, "mt-bench-med": 40},
               "chat_hard": {"mt-bench-hard": 37, "llmbar-natural": 100, "llmbar-adver-neighbor": 134,
                             "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46},
               "safety": {"refusals-dangerous": 100, "refusals-offensive": 100, "xstest-should-refuse": 250,
                          "xstest-should-respond": 154, "donotanswer": 136},
               "reasoning": {"math-prm": 984, "hep-python": 164, "hep-js": 164}}
    sections = {}
    for section, w in weights.items():
        sections[section] = sum(w[s] * sum(counts[s]) / len(counts[s]) for s in w) / sum(w.values())
        assert result["metrics"][section] == pytest.approx(sections[section])
    turns = lambda p: [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(p)]  # noqa: E731
    prior_acc = [sum(right(turns(r["prompt"]), r["chosen"], r["rejected"]) for r in rows) / len(rows) for rows in prior.values()]
    assert result["metrics"]["prior_sets"] == pytest.approx(sum(prior_acc) / 2)
    expected = (2 * sum(sections.values()) + sum(prior_acc) / 2) / 9
    assert result["score"] == pytest.approx(100 * expected)
    assert result["n"] == len(core) + sum(len(rows) for rows in prior.values())
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert sum(s["correct"] for s in samples) == sum(map(sum, counts.values())) + round(sum(p * len(r) for p, r in zip(prior_acc, prior.values())))


def test_rewardbench_score_reaches_results_outside_the_categories(run_config, tiny_reward_model, tmp_path):
    from harness import pipeline
    from harness.records.results import read_index

    cfg = run_config("algorithm=none", "reward_model=tiny", "eval=rewardbench_tiny", "tracking=none")
    result = pipeline.run(cfg)
    bench = result["benchmarks"]["rewardbench"]
    assert "error" not in bench and bench["category"] == "reward_model"
    scorer = RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)  # the run's RM, scored directly
    assert bench["score"] == pytest.approx(rewardbench.run(cfg.eval.benchmarks.rewardbench, scorer, tmp_path / "direct")["score"])
    assert result["axes"]["reward_model"] == "tiny" and result["axes"]["algorithm"] == "none"
    assert all(v is None for v in result["categories"].values()) and result["average"] is None
    row = read_index(result["result_path"].rsplit("/runs/", 1)[0])[-1]
    assert row["eval/rewardbench"] == pytest.approx(bench["score"])


def test_rewardbench_needs_a_reward_model():
    with pytest.raises(ConfigError, match=r"eval=rewardbench evaluates a reward model but reward_model=none; choose one of \['mix_13b'"):
        check(compose("algorithm=none", "eval=rewardbench"))
    cfg = compose("algorithm=none", "reward_model=uf_13b", "eval=rewardbench")
    check(cfg)
    bench = cfg.eval.benchmarks.rewardbench
    assert (bench.hub_id, bench.split, list(bench.options.prior_sets)) == (
        "allenai/reward-bench", "filtered", ["anthropic_helpful", "anthropic_hhh", "shp", "summarize"])
