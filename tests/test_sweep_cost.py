"""The sweep planner's GPU-hours (harness/sweep/cost.py) on a stage computed by hand from the README's cost model."""

from __future__ import annotations

import pytest

from conftest import compose
from harness.sweep.cost import CostModel, gpu_hours


def test_gpu_hours_of_a_13b_dpo_stage_by_hand():
    cfg = compose("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=dpo", "eval=smoke")
    # UltraFeedback (fine-grained): 60,908 pairs x 2 sequences (chosen, rejected) x 512 tokens, 3 epochs
    epoch = 60_908 * 2 * 512                        # = 62,369,792 tokens
    # policy trained every epoch (6 N T) + the reference forward once, precomputed (2 N T) = 1.622e19
    flops = 6 * 13e9 * 3 * epoch + 2 * 13e9 * epoch
    hours = flops / (312e12 * 0.40) / 3600          # A100 bf16 peak at 40% utilisation = 36.1 GPU-hours
    assert hours == pytest.approx(36.09, abs=0.01)
    assert gpu_hours("policy", cfg, {}, CostModel()) == pytest.approx(hours, rel=1e-9)
    # a 7B model costs 7/13 of it; a subset of 10,000 pairs, 10,000/60,908 of it
    assert gpu_hours("policy", compose("model=tulu2_7b", "dataset=ultrafeedback_fg", "eval=smoke"), {}, CostModel()) == \
        pytest.approx(hours * 7 / 13, rel=1e-9)
    subset = compose("model=tulu2_13b", "dataset=ultrafeedback_fg", "dataset.max_samples=10000", "eval=smoke")
    assert gpu_hours("policy", subset, {}, CostModel()) == pytest.approx(hours * 10_000 / 60_908, rel=1e-9)


def test_gpu_hours_of_a_13b_ppo_stage_by_hand():
    """The paper's PPO (harness.train.ppo), every pass counted per sample of 256 prompt + 512 response tokens."""
    cfg = compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "prompts=uf", "eval=smoke")
    n = 13e9                                        # policy, reference; the reward and value models are 13B too
    seq = 256 + 512
    forward_only = (2 * n * seq                     # the policy's log-probs of the sampled tokens (the old policy)
                    + 2 * n * seq                   # the value model's values
                    + 2 * n * seq                   # the reference's log-probs (KL penalty)
                    + 2 * n * seq                   # the reward model's score
                    + 2 * (n + n) * seq)            # recompute_per_minibatch: log-probs and values again before the step
    trained = 6 * (n + n) * seq                     # one PPO epoch: policy and value forward + backward
    generated = 2 * n * 512                         # sampling the response, at 5% utilisation
    samples = 60_908                                # one epoch over UltraFeedback's prompts, one response each
    hours = (samples * (forward_only + trained) / (312e12 * 0.40) + samples * generated / (312e12 * 0.05)) / 3600
    assert hours == pytest.approx(32.49 + 14.44, abs=0.01)  # 46.9 GPU-hours: 24 x 13e9 x 768 FLOPs + generation
    assert gpu_hours("policy", cfg, {}, CostModel()) == pytest.approx(hours, rel=1e-9)
    # textbook PPO (no recompute) skips the second forward; a value model from the policy is the policy's size
    textbook = compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf", "eval=smoke",
                       "algorithm.recompute_per_minibatch=false", "algorithm.value_from_reward_model=false")
    n_rm = 70e9
    flops = 2 * n * seq + 2 * n * seq + 2 * n * seq + 2 * n_rm * seq + 6 * (n + n) * seq
    assert gpu_hours("policy", textbook, {}, CostModel()) == pytest.approx(
        (samples * flops / (312e12 * 0.40) + samples * generated / (312e12 * 0.05)) / 3600, rel=1e-9)


def test_gpu_hours_of_grpo_and_ipo_by_hand():
    # GRPO: no value model; 8 completions per prompt over 1/8 of the prompts; reference and reward model forward only
    cfg = compose("model=tulu2_13b", "algorithm=grpo", "reward_model=uf_13b", "prompts=uf", "eval=smoke")
    n, seq, samples = 13e9, 256 + 512, 60_908 * 0.125 * 8
    flops = samples * (2 * n * seq + 2 * n * seq + 6 * n * seq)
    hours = (flops / (312e12 * 0.40) + samples * 2 * n * 512 / (312e12 * 0.05)) / 3600
    assert gpu_hours("policy", cfg, {}, CostModel()) == pytest.approx(hours, rel=1e-9)
    # on the verifiable GSM8k reward alone there is no reward model to run
    gsm8k = compose("model=tulu2_13b", "algorithm=grpo", "algorithm.reward=gsm8k", "prompts=uf", "eval=smoke")
    flops = samples * (2 * n * seq + 6 * n * seq)
    assert gpu_hours("policy", gsm8k, {}, CostModel()) == pytest.approx(
        (flops / (312e12 * 0.40) + samples * 2 * n * 512 / (312e12 * 0.05)) / 3600, rel=1e-9)
    # IPO trains with DPO's trainer and recipe: DPO's cost
    ipo = compose("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=ipo", "eval=smoke")
    dpo = compose("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=dpo", "eval=smoke")
    assert gpu_hours("policy", ipo, {}, CostModel()) == pytest.approx(gpu_hours("policy", dpo, {}, CostModel()), rel=1e-9)
