"""GPU-hours of the stages tests/test_sweep_cost.py does not reach (harness/sweep/cost.py), counted by hand from the
cost model in its docstring: reward-model training, evaluations and the generations they share, DPO without a
precomputed reference, and the cost model's own arithmetic. No model is built: a composed config and numbers.

One hour at the default model (A100 bf16, 312 TFLOP/s): 312e12 x 0.40 x 3600 training FLOPs, or 312e12 x 0.05 x 3600
generated-token FLOPs.
"""

from __future__ import annotations

import pytest

from conftest import compose
from harness.sweep.cost import CostModel, generation_key, gpu_hours

TRAIN_HOUR = 312e12 * 0.40 * 3600   # FLOPs of one GPU-hour of training at 40% utilisation
GEN_HOUR = 312e12 * 0.05 * 3600     # FLOPs of one GPU-hour of generation at 5% utilisation


def test_the_cost_models_hour_and_its_description():
    model = CostModel()
    # the same operations in the same order: equal to the last bit (312 x 1e12 FLOP/s, exactly)
    assert model.hours(TRAIN_HOUR) == TRAIN_HOUR / (312e12 * 0.40) / 3600
    assert model.hours(TRAIN_HOUR) == pytest.approx(1.0, rel=1e-12)
    assert model.hours(0.0) == 0.0  # nothing generated unless said
    assert model.hours(0.0, GEN_HOUR) == pytest.approx(1.0, rel=1e-12)
    assert model.hours(TRAIN_HOUR, 3 * GEN_HOUR) == pytest.approx(4.0, rel=1e-12)
    # another GPU: 1000 TFLOP/s at 50% / 10%
    fast = CostModel(peak_tflops=1000.0, train_utilisation=0.5, generation_utilisation=0.1)
    assert fast.hours(1e15 * 0.5 * 3600, 1e15 * 0.1 * 7200) == pytest.approx(3.0, rel=1e-12)
    assert model.describe() == (
        "cost model: training 6 x params x tokens, forward-only passes 2 x params x tokens, generation 2 x params x "
        "tokens; 312 TFLOP/s peak per GPU (A100 bf16) at 40% utilisation (training) and 5% (generation); assumed 512 "
        "tokens per sequence, 256-token prompts, 512-token responses, 1000 examples for a full test set")
    assert CostModel(990.5, 0.35, 0.07, 300, 128, 1024, 50).describe() == (
        "cost model: training 6 x params x tokens, forward-only passes 2 x params x tokens, generation 2 x params x "
        "tokens; 990.5 TFLOP/s peak per GPU (A100 bf16) at 35% utilisation (training) and 7% (generation); assumed 300 "
        "tokens per sequence, 128-token prompts, 1024-token responses, 50 examples for a full test set")


def test_reward_model_training_by_hand():
    # UltraFeedback's 60,908 pairs x 2 sequences x 512 tokens, one epoch, 6 x 13e9 FLOPs per token
    uf13 = compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "prompts=uf", "eval=smoke")
    hours = 6 * 13e9 * 60_908 * 2 * 512 / TRAIN_HOUR
    assert hours == pytest.approx(10.82, abs=0.01)
    assert gpu_hours("reward_model", uf13, {}, CostModel()) == pytest.approx(hours, rel=1e-9)
    # a 70B reward model for a 13B policy costs 70/13 as much; two epochs twice as much
    uf70 = compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf", "eval=smoke")
    assert gpu_hours("reward_model", uf70, {}, CostModel()) == pytest.approx(hours * 70 / 13, rel=1e-9)
    two = compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "reward_model.epochs=2", "prompts=uf",
                  "eval=smoke")
    assert gpu_hours("reward_model", two, {}, CostModel()) == pytest.approx(2 * hours, rel=1e-9)
    # Table 2: a reward model without a size of its own is trained from the run's (7B) SFT model
    own = compose("model=tulu2_7b", "algorithm=ppo", "reward_model=none", "prompts=uf",
                  "eval=smoke")
    assert gpu_hours("reward_model", own, {}, CostModel()) == pytest.approx(hours * 7 / 13, rel=1e-9)
    # 300 tokens per sequence instead of 512
    assert gpu_hours("reward_model", uf13, {}, CostModel(tokens_per_sequence=300)) == pytest.approx(
        hours * 300 / 512, rel=1e-9)


def test_the_tiny_model_costs_nothing_and_an_unknown_kind_is_not_guessed():
    cfg = compose("model=tulu2_13b", "algorithm=dpo", "eval=smoke")
    assert gpu_hours("model", cfg, {}, CostModel()) == 0.0
    assert gpu_hours("sft", cfg, {}, CostModel()) is None
    assert gpu_hours("policy", compose("model=tulu2_13b", "algorithm=best_of_n", "eval=smoke"), {}, CostModel()) is None


def test_dpo_with_the_reference_run_every_epoch_by_hand():
    """Two processes (or precompute off): the reference's forward runs in each of the 3 epochs, not once."""
    epoch = 60_908 * 2 * 512
    hours = (6 * 3 + 2 * 3) * 13e9 * epoch / TRAIN_HOUR
    for overrides in (["launch.processes=2"], ["algorithm.precompute_ref_log_probs=false"]):
        cfg = compose("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=dpo", "eval=smoke", *overrides)
        assert gpu_hours("policy", cfg, {}, CostModel()) == pytest.approx(hours, rel=1e-9)
    # a dataset without a row count of its own is costed at the paper's 60,908 rows
    cfg = compose("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=dpo", "eval=smoke", "dataset.paper_rows=null",
                  "algorithm.precompute_ref_log_probs=false", "dataset.max_samples=1000")
    assert gpu_hours("policy", cfg, {}, CostModel()) == pytest.approx(hours * 1000 / 60_908, rel=1e-9)
    # a dataset of its own size (HelpSteer: 9,270 pairs) is costed at that size
    cfg = compose("model=tulu2_13b", "dataset=helpsteer", "algorithm=dpo", "eval=smoke",
                  "algorithm.precompute_ref_log_probs=false")
    assert gpu_hours("policy", cfg, {}, CostModel()) == pytest.approx(hours * 9270 / 60_908, rel=1e-9)


def test_ppo_value_model_from_the_reward_model_and_several_ppo_epochs_by_hand():
    """A 70B reward model makes a 70B value model (value_from_reward_model); 2 PPO epochs train and recompute twice;
    2,000 prompts, 4 responses each (num_generations); 100 + 200 tokens per sample."""
    cfg = compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf", "eval=smoke",
                  "algorithm.ppo_epochs=2", "prompts.max_samples=2000", "+algorithm.num_generations=4")
    n, rm, seq, samples = 13e9, 70e9, 100 + 200, 2000 * 4
    forward = 2 * (n + rm + n + rm + (n + rm) * 2) * seq   # old policy, values, reference, reward; recomputed x 2
    trained = 6 * (n + rm) * 2 * seq
    expected = samples * (forward + trained) / TRAIN_HOUR + samples * 2 * n * 200 / GEN_HOUR
    assert gpu_hours("policy", cfg, {}, CostModel(prompt_tokens=100, response_tokens=200)) == pytest.approx(
        expected, rel=1e-9)


def test_grpo_without_a_reference_and_with_both_rewards_by_hand():
    """beta = 0: no reference forward; reward `both` (GSM8k's and the reward model's) runs the 70B reward model."""
    n, rm, seq, samples = 13e9, 70e9, 256 + 512, 60_908 * 0.125 * 8
    gen = samples * 2 * n * 512 / GEN_HOUR
    no_reference = compose("model=tulu2_13b", "algorithm=grpo", "reward_model=uf_70b", "prompts=uf", "eval=smoke",
                           "algorithm.beta=0")
    assert gpu_hours("policy", no_reference, {}, CostModel()) == pytest.approx(
        samples * (2 * rm * seq + 6 * n * seq) / TRAIN_HOUR + gen, rel=1e-9)
    both = compose("model=tulu2_13b", "algorithm=grpo", "reward_model=uf_70b", "prompts=uf", "eval=smoke",
                   "algorithm.reward=both")
    assert gpu_hours("policy", both, {}, CostModel()) == pytest.approx(
        samples * (2 * n * seq + 2 * rm * seq + 6 * n * seq) / TRAIN_HOUR + gen, rel=1e-9)


def test_evaluations_by_hand_and_shared_generations_cost_once():
    cfg = compose("model=tulu2_13b", "algorithm=dpo", "eval=smoke")
    n = 13e9
    spec = {"policy": "p1", "benchmark": {"name": "a", "metric": "acc", "limit": 100,
                                          "generation": {"num_samples": 4, "max_new_tokens": 300}}}
    # 100 examples x 4 samples: 256 prompt tokens forward, min(300, 512) generated
    hours = 400 * 2 * n * 256 / TRAIN_HOUR + 400 * 2 * n * 300 / GEN_HOUR
    assert gpu_hours("eval", cfg, spec, CostModel()) == pytest.approx(hours, rel=1e-9)
    # a whole test set (no limit) is 1,000 examples; one sample; generation capped at 512 tokens by default
    whole = {"policy": "p1", "benchmark": {"name": "b", "generation": {"max_new_tokens": 8192}}}
    assert gpu_hours("eval", cfg, whole, CostModel()) == pytest.approx(
        1000 * 2 * n * 256 / TRAIN_HOUR + 1000 * 2 * n * 512 / GEN_HOUR, rel=1e-9)
    # a spec without a benchmark entry: the defaults throughout
    assert gpu_hours("eval", cfg, {"policy": "p1"}, CostModel()) == pytest.approx(
        1000 * 2 * n * 256 / TRAIN_HOUR + 1000 * 2 * n * 512 / GEN_HOUR, rel=1e-9)
    bare = {"policy": "p1", "benchmark": {"name": "c"}}
    long = CostModel(response_tokens=1024, eval_examples=10)   # max_new_tokens unset: 512, under the 1024 assumed
    assert gpu_hours("eval", cfg, bare, long) == pytest.approx(
        10 * 2 * n * 256 / TRAIN_HOUR + 10 * 2 * n * 512 / GEN_HOUR, rel=1e-9)
    # AlpacaEval 1 and 2's case: the same generations scored two ways cost once; other requests cost again
    generated: set = set()
    assert gpu_hours("eval", cfg, spec, CostModel(), generated) == pytest.approx(hours, rel=1e-9)
    assert len(generated) == 1
    rescored = {"policy": "p1", "benchmark": {**spec["benchmark"], "name": "a2", "category": "x", "metric": "lc",
                                              "judges": {"j": 1}, "options": {"o": 2}}}
    assert gpu_hours("eval", cfg, rescored, CostModel(), generated) == 0.0
    other_policy = {**spec, "policy": "p2"}
    assert gpu_hours("eval", cfg, other_policy, CostModel(), generated) == pytest.approx(hours, rel=1e-9)
    assert len(generated) == 2
    # without a record of what was generated, every evaluation is costed in full
    assert gpu_hours("eval", cfg, rescored, CostModel()) == pytest.approx(hours, rel=1e-9)


def test_generation_key_ignores_only_how_the_generations_are_scored():
    spec = {"policy": "p1", "benchmark": {"name": "a", "limit": 5, "generation": {"temperature": 0.0}}}
    same = {"policy": "p1", "benchmark": {"name": "b", "category": "c", "metric": "m", "judges": {}, "options": {},
                                          "limit": 5, "generation": {"temperature": 0.0}}}
    assert generation_key(spec) == generation_key(same)
    for changed in ({**spec, "policy": "p2"}, {**spec, "benchmark": {**spec["benchmark"], "limit": 6}},
                    {**spec, "benchmark": {**spec["benchmark"], "generation": {"temperature": 0.7}}},
                    {**spec, "benchmark": {**spec["benchmark"], "runner": "lm_eval"}}):
        assert generation_key(changed) != generation_key(spec)
    assert generation_key({}) == generation_key({"policy": None, "benchmark": {}})
    assert generation_key({"benchmark": {"name": "x"}}) == generation_key({})
