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
