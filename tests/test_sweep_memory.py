"""The memory plan (harness/sweep/memory.py) on worked cases, and the launcher refusing a job no profile can hold.

Arithmetic by hand (GB = 1e9 bytes; Llama-2 13B: hidden 5120, 40 layers; 70B: hidden 8192, 80 layers, 8 KV heads of 128):
- 13B DPO, ZeRO-3 over 8 GPUs: 13e9 x (4 + 4 + 8) / 8 = 26 GB of trained state (6.5 + 6.5 + 13), reference
  13e9 x 2 / 8 = 3.25 GB: fits 80 GB. Unsharded, fp32 masters, gradients and AdamW moments on every GPU:
  13e9 x 16 = 208 GB + 26 GB reference: does not.
- 13B PPO with a 70B reward model (so a 70B value model), FSDP over one node of 8: (13 + 70)e9 x 16 / 8 = 166 GB of
  trained state per GPU before anything else: does not fit. Rollouts: the 13B policy gathered (26 GB) plus its KV
  cache, 2 x 40 x 5120 x 2 B = 819,200 B per token x 16 sequences x 2048 tokens = 26.8 GB; gradients are freed by
  then. Gathered layers: the roots of policy (2 x 32000 x 5120 + 5120 = 327.7M: embeddings, head, norm) and value
  (32000 x 8192 + 2 x 8192 = 262.2M: embeddings, norm, score head) and two 70B decoder layers (70e9 - 262.2M) / 80 =
  871.7M each, in bf16: 4.67 GB. The rollout phase on one node: 83e9 x (4 + 8) / 8 + 83e9 x 2 / 8 + 4.67 + 26 + 26.8 =
  202.7 GB. With n nodes: 83e9 x 14 B / 8n + 57.5 <= 72 (90% of 80) needs 8n >= 80.1: n = 11.
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
    assert not ok and est["weights"] + est["gradients"] + est["optimizer"] + est["frozen"] == pytest.approx(234.0)


def test_13b_ppo_with_a_70b_reward_model_does_not_fit_one_node_and_the_plan_says_what_does(tmp_path):
    run = run_of(tmp_path, "model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf")
    policy = next(s for s in run.stages if s.kind == "policy")
    ok, est = memory.fits("policy", run.config, {**NODE_8X80, "sharding": "fsdp"}, policy.spec)
    assert not ok
    assert est["weights"] + est["gradients"] + est["optimizer"] == pytest.approx(166.0)
    assert est["gathered_policy"] + est["kv_cache"] == pytest.approx(26.0 + 2 * 40 * 5120 * 2 * 16 * 2048 / 1e9)
    # one 8 x 80GB node is all there is: refused before submission, with the node count that would hold it
    with pytest.raises(ValueError, match=r"does not fit the largest profile.*node \(1 x 8 GPUs of 80 GB.*sharding "
                                         r"fsdp\): 203 GB/GPU \(training 196.4 / rollout 202.8\) = weights 41.5 \+ gradients 41.5 \(training\) "
                                         r"\+ optimizer 83.0 \+ frozen models 20.8 \+ gathered layers 4.7"
                                         r".*it would fit profile node with nodes=11 \(88 GPUs\)"):
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
    assert policy["profile"] is None and "nodes=11" in policy["error"]
    text = plan.render(report, stages=True)  # every stage and every warning (--stages)
    assert "GB/GPU" in text and "NO FIT" in text and "REFUSED: stage policy" in text
    report = plan.report([run], 1, name="one", profiles=plan.slurm_profiles())
    policy = next(r for r in report["stage_rows"] if r["kind"] == "policy")
    assert policy["profile"] == "train_70b_2nodes" and policy["memory_gb"] < 72 and not report["memory_errors"]
    assert "on train_70b_2nodes:" in plan.render(report)


def test_reward_model_training_is_planned_sharded_per_phase_and_its_run_gets_a_profile_that_holds_it(tmp_path):
    """Hand arithmetic, 70B reward model (uf_70b: 4096-token pairs, chosen and rejected in one micro-batch of 2):
    alone in one process 70e9 x 16 B = 1,120 GB; over 8 GPUs 140 GB of states per GPU (17.5 + 17.5 + 35 x 2): offloaded
    to host memory, 8 x 140 = 1,120 GB per node, + 280 GB (rank 0 reads the fp32 checkpoint) + 8 x 10 GB = 1,480 GB
    <= 1,500. On the GPU: activations 2 x 8192 x 8192 x 80 + 34 x 8192 x 8192 = 13.02 GB (checkpointed, no LM head)
    and gathered units: the root (32000 x 8192 + 2 x 8192 = 262.2M) and two decoder layers of 871.7M, bf16: 4.01 GB."""
    (run,) = plan.plan_runs([["model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "prompts=uf",
                              f"paths.stages={tmp_path}"]], lambda o: compose(*o))
    rm = next(s for s in run.stages if s.kind == "reward_model")
    profiles = plan.slurm_profiles()
    ok, est = memory.fits("reward_model", run.config, profiles["train_70b"], rm.spec)
    assert ok and est["offloaded"] and est["weights"] == pytest.approx(35.0)
    assert est["weights"] + est["gradients"] + est["optimizer"] == pytest.approx(140.0)
    assert est["host_per_node"] == pytest.approx(1120 + 280 + 80)
    assert est["phases"] == {"training": pytest.approx(13.02 + 4.01, abs=0.01)}  # no rollout phase
    # the same stage sharded without offload on one node: 140 GB of states per GPU does not fit
    ok, est = memory.fits("reward_model", run.config, {**NODE_8X80, "sharding": "fsdp"}, rm.spec)
    assert not ok and est["peak"] == pytest.approx(140 + 17.03, abs=0.01)
    # the run's job (reward model, PPO, evaluation) gets the 2-node profile, which holds the reward model too
    assert choose_profile(run, profiles) == "train_70b_2nodes"
    assert memory.fits("reward_model", run.config, profiles["train_70b_2nodes"], rm.spec)[0]
    # `plan --stages` prints the memory per GPU of each phase of every stage, reward models included
    text = plan.render(plan.report([run], 1, profiles=profiles), stages=True)
    rows = {r[0]: r for r in map(str.split, text.splitlines()) if len(r) > 7 and r[2] in ("todo", "complete")}
    assert rows["reward_model"][5:8] == ["17", "-", "train_70b"]  # training 17 GB, no rollout, on its own profile
    assert rows["policy"][5:8] == ["10", "58", "train_70b_2nodes"]  # PPO: training 9.6, rollout 57.5


def test_a_run_gets_one_profile_that_holds_every_stage_or_is_refused(tmp_path):
    """The job of a run is one profile: a stage that fits a smaller profile must also fit, and be allowed in, the larger
    one its run needs, or the run is refused (before, the run got the largest profile any stage needed)."""
    (run,) = plan.plan_runs([["model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "prompts=uf",
                              f"paths.stages={tmp_path}"]], lambda o: compose(*o))
    small = {**NODE_8X80, "kinds": ["reward_model"], "sharding": "fsdp"}  # the 13B reward model: 32 GB per GPU
    big = {**NODE_8X80, "kinds": ["reward_model", "policy", "eval"], "gpu_mem_gb": 1000}  # unsharded: 213 and 471 GB
    assert choose_profile(run, {"small": small, "big": big}) == "big"
    # a big profile that may not train reward models: the reward model fits `small` only, the policy `big` only
    with pytest.raises(ValueError, match=r"no one resource profile holds every stage.*reward_model \w+ fits \['small'\]; "
                                         r"policy \w+ fits \['big'\]"):
        choose_profile(run, {"small": small, "big": {**big, "kinds": ["policy", "eval"]}})
