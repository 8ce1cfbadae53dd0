"""DPO with reference log-probs computed once before training (TRL's precompute_ref_log_probs, the default) trains
the same policy as the plain path, which runs the reference model at every step."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from harness.pipeline import fit_training_data, load_training_data, policy_stage
from harness.train import dpo


def train(cfg, base, out_dir, precompute: bool) -> dict:
    cfg.algorithm.precompute_ref_log_probs = precompute
    inputs = fit_training_data(cfg, load_training_data(cfg), base)
    return dpo.train(cfg.algorithm, base, cfg.model, inputs.train, inputs.heldout, out_dir, "none", "test", cfg.seed)


def test_precomputed_reference_trains_the_same_policy_as_the_plain_path(run_config, tiny_base, tmp_path):
    cfg = run_config("algorithm=dpo", "tracking=none")
    assert cfg.algorithm.precompute_ref_log_probs  # the default
    plain = train(cfg, tiny_base, tmp_path / "plain", precompute=False)
    cached = train(cfg, tiny_base, tmp_path / "cached", precompute=True)
    assert cached["global_step"] == plain["global_step"] > 0
    for key in ("train_loss", "heldout_before_loss", "heldout_after_loss", "heldout_after_rewards/margins",
                "heldout_after_rewards/chosen", "heldout_after_rewards/rejected"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-3, abs=1e-4), key
    assert cached["heldout_after_rewards/accuracies"] == plain["heldout_after_rewards/accuracies"]
    w_plain, w_cached = (load_file(str(next((tmp_path / d / "model").glob("*.safetensors")))) for d in ("plain", "cached"))
    assert w_plain.keys() == w_cached.keys()
    for name in w_plain:
        torch.testing.assert_close(w_cached[name], w_plain[name], rtol=1e-3, atol=1e-4, msg=name)


def test_precomputing_is_not_part_of_the_policy_stage_key(run_config, tiny_base):
    on, off = run_config("algorithm=dpo"), run_config("algorithm=dpo", "algorithm.precompute_ref_log_probs=false")
    assert policy_stage(on, tiny_base).key == policy_stage(off, tiny_base).key
    assert policy_stage(on, tiny_base).key != policy_stage(run_config("algorithm=dpo", "algorithm.beta=0.2"), tiny_base).key


def test_cost_model_counts_one_reference_pass_when_precomputed(run_config):
    from harness.sweep.cost import CostModel, gpu_hours

    on = run_config("model=tulu2_13b", "algorithm=dpo", "dataset=ultrafeedback_fg")
    off = run_config("model=tulu2_13b", "algorithm=dpo", "dataset=ultrafeedback_fg", "algorithm.precompute_ref_log_probs=false")
    epochs = on.algorithm.epochs
    ratio = gpu_hours("policy", on, {}, CostModel()) / gpu_hours("policy", off, {}, CostModel())
    assert ratio == pytest.approx((6 * epochs + 2) / ((6 + 2) * epochs))  # 3 epochs: 20/24
    several = run_config("model=tulu2_13b", "algorithm=dpo", "dataset=ultrafeedback_fg", "launch.processes=2")
    assert gpu_hours("policy", several, {}, CostModel()) == gpu_hours("policy", off, {}, CostModel())
