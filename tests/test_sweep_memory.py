"""The memory plan (harness/sweep/memory.py) on worked cases, and the launcher refusing a job no profile can hold.

Arithmetic by hand (GB = 1e9 bytes; Llama-2 13B: hidden 5120, 40 layers; 70B: hidden 8192, 80 layers, 8 KV heads of 128):
- 13B DPO, ZeRO-3 over 8 GPUs: 13e9 x (4 + 4 + 8) / 8 = 26 GB of trained state (6.5 + 6.5 + 13), reference
  13e9 x 2 / 8 = 3.25 GB: fits 80 GB. Unsharded: 13e9 x 8 = 104 GB + 26 GB reference: does not.
- 13B PPO with a 70B reward model (so a 70B value model), FSDP over one node of 8: (13 + 70)e9 x 16 / 8 = 166 GB of
  trained state per GPU before anything else: does not fit. Rollouts: the 13B policy gathered (26 GB) plus its KV
  cache, 2 x 40 x 5120 x 2 B = 819,200 B per token x 16 sequences x 2048 tokens = 26.8 GB. With n nodes:
  (83e9 x 18 B) / 8n + 3.5 (two 70B layers gathered) + 52.8 (rollout) <= 72 (90% of 80) needs 8n >= 95: n = 12.
"""

from __future__ import annotations

import pytest

from conftest import compose
from harness.records.stages import MARKER
from harness.sweep import memory, plan
from harness.sweep.profiles import choose_profile

NODE_8X80 = {"kinds": ["model", "reward_model", "policy", "eval"], "max_params_b": 80, "gpus_per_node": 8, "mem_gb": 900}


def run_of(tmp_path, *overrides):
    """A planned run whose reward model is already trained (only its policy and evaluations are left)."""
    (run,) = plan.plan_runs([[*overrides, f"paths.stages={tmp_path}"]], lambda o: compose(*o))
    for stage in run.stages:
        if stage.kind == "reward_model":
            stage.dir.mkdir(parents=True, exist_ok=True)
            (stage.dir / MARKER).write_text("{}")
    return run


def test_13b_dpo_fits_one_node_with_zero3_and_not_unsharded():
    cfg = compose("model=tulu2_13b", "algorithm=dpo", "dataset=ultrafeedback_fg")
    ok, est = memory.fits("policy", cfg, {**NODE_8X80, "sharding": "zero3"})
    assert ok
    assert (est["weights"], est["gradients"], est["optimizer"], est["frozen"]) == pytest.approx((6.5, 6.5, 13.0, 3.25))
    # activation checkpointing (the recipe's default) keeps layer inputs only: far less than every layer's activations
    assert est["activations_checkpointed"] < est["activations_full"] / 5
    assert est["peak"] < 0.9 * 80
    ok, est = memory.fits("policy", cfg, {**NODE_8X80, "sharding": "none"})
    assert not ok and est["weights"] + est["gradients"] + est["optimizer"] + est["frozen"] == pytest.approx(130.0)


def test_13b_ppo_with_a_70b_reward_model_does_not_fit_one_node_and_the_plan_says_what_does(tmp_path):
    run = run_of(tmp_path, "model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf")
    policy = next(s for s in run.stages if s.kind == "policy")
    ok, est = memory.fits("policy", run.config, {**NODE_8X80, "sharding": "fsdp"}, policy.spec)
    assert not ok
    assert est["weights"] + est["gradients"] + est["optimizer"] == pytest.approx(166.0)
    assert est["rollout"] == pytest.approx(26.0 + 2 * 40 * 5120 * 2 * 16 * 2048 / 1e9)
    # one 8 x 80GB node is all there is: refused before submission, with the node count that would hold it
    with pytest.raises(ValueError, match=r"does not fit the largest profile.*node \(1 x 8 GPUs of 80 GB.*sharding "
                                         r"fsdp\): 243 GB/GPU = weights 41.5 \+ gradients 41.5 \+ optimizer 83.0 \+ frozen models 20.8"
                                         r".*it would fit profile node with nodes=12 \(96 GPUs\)"):
        choose_profile(run, {"node": {**NODE_8X80, "sharding": "fsdp"}})
    # the repository's profiles: 13B PPO with a 13B reward model gets one node with offload, with a 70B one two nodes
    profiles = plan.slurm_profiles()
    # one node with everything offloaded fits the GPUs but not the host: 83e9 x 18 B of states, the 70B value model
    # read whole by rank 0 in fp32 (280 GB), 10 GB per process
    ok, est = memory.fits("policy", run.config, profiles["train_70b"], policy.spec)
    assert not ok and est["peak"] < 72 and est["host_per_node"] == pytest.approx(1494 + 280 + 80)
    assert choose_profile(run, profiles) == "train_70b_2nodes"
    assert choose_profile(run_of(tmp_path, "model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "prompts=uf"),
                          profiles) == "train_13b_offload"


def test_plan_prints_memory_per_gpu_and_refuses_what_no_profile_holds(tmp_path):
    run = run_of(tmp_path, "model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf")
    report = plan.report([run], 1, name="one", profiles={"node": {**NODE_8X80, "sharding": "fsdp"}})
    policy = next(r for r in report["stage_rows"] if r["kind"] == "policy")
    assert policy["profile"] is None and "nodes=12" in policy["error"]
    text = plan.render(report)
    assert "GB/GPU" in text and "NO FIT" in text and "REFUSED: stage policy" in text
    report = plan.report([run], 1, name="one", profiles=plan.slurm_profiles())
    policy = next(r for r in report["stage_rows"] if r["kind"] == "policy")
    assert policy["profile"] == "train_70b_2nodes" and policy["memory_gb"] < 72 and not report["memory_errors"]
    assert "on train_70b_2nodes:" in plan.render(report)
