"""Paper scale on 2 CPU processes (gloo) with torch FSDP2 (one torchrun launch, tests/fsdp_scale_worker.py):
PPO accumulating 4 micro-batches per process, sharded and offloaded to CPU (pinning off), holds no gradient larger
than the rank's shard, equals the run with one micro-batch, clips, and resumes exactly; GRPO's generation under
accelerate's FSDP2 all-gathers the policy once per round instead of once per token."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import torchrun_two

MAX_GRAD_NORM = 1e-3  # far below the tiny models' gradient norms (~0.5 policy, ~2 value): every step clips
ACCUMULATING = ("fsdp", "offload", "resumed")  # the runs with 4 micro-batches per process
METRICS = ("objective/rm_score", "objective/kl", "objective/entropy", "loss/policy", "loss/value", "policy/approxkl",
           "val/response_length", "policy/grad_norm", "val/grad_norm", "lr")


@pytest.fixture(scope="module")
def ranks(tiny_base, tiny_reward_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp_scale")
    torchrun_two("fsdp_scale_worker.py", tiny_base.path, tiny_reward_model.ref.path, str(out), str(MAX_GRAD_NORM))
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_accumulating_micro_batches_holds_only_the_ranks_gradient_shard(ranks):
    _, (r0, r1) = ranks
    for run in ("one", *ACCUMULATING):
        assert r0[run]["shard_elements"] + r1[run]["shard_elements"] == r0[run]["parameters"], run  # two halves
        for r in (r0, r1):
            seen = r[run]
            assert seen["micro_batches"] == (1 if run == "one" else 4), run
            # 2 minibatches per iteration (rollout 32, minibatch 16), 2 iterations (the resumed run: the second)
            steps = 2 if run == "resumed" else 4
            assert len(seen["gradient_elements"]) == steps * seen["micro_batches"], run
            # after every micro-batch's backward: exactly this rank's shard of every gradient, nothing unsharded
            # (accumulating without reduce-scatter, FSDP2 held the whole model's gradients: 614,304 on each rank)
            assert set(seen["gradient_elements"]) == {seen["shard_elements"]}, run
            assert seen["shard_elements"] < 0.51 * seen["parameters"]
    assert r0["offload"]["offloaded"] == r0["resumed"]["offloaded"] == [[True, False]]  # on CPU, not pinned
    assert r0["fsdp"]["offloaded"] == [[False, False]]


def test_four_micro_batches_equal_one(ranks):
    out, (r0, _) = ranks
    one = r0["one"]["history"]
    assert [h["step"] for h in one] == [1, 2]
    for run in ("fsdp", "offload"):
        for expected, got in zip(one, r0[run]["history"], strict=True):
            for metric in METRICS:
                assert got[metric] == pytest.approx(expected[metric], rel=1e-4, abs=1e-6), (run, metric)
        for expected, got in zip(r0["one"]["clip"], r0[run]["clip"], strict=True):
            for group in expected:
                assert got[group] == pytest.approx(expected[group], rel=1e-4), (run, group)
    assert abs(one[1]["objective/kl"]) > 1e-4  # the second rollout comes from an updated policy
    reference = load_file(out / "one" / "model" / "model.safetensors")
    for run in ("fsdp", "offload"):
        trained = load_file(out / run / "model" / "model.safetensors")
        assert trained.keys() == reference.keys()
        for key in reference:
            torch.testing.assert_close(trained[key], reference[key], rtol=1e-4, atol=1e-6)


def test_every_step_clips_both_groups_to_max_grad_norm(ranks):
    _, (r0, r1) = ranks
    for run in ("one", *ACCUMULATING):
        for a, b in zip(r0[run]["clip"], r1[run]["clip"], strict=True):  # one norm of the whole gradient, on every rank
            assert all(a[group] == pytest.approx(b[group], rel=1e-6) for group in a), run
        for step in r0[run]["clip"]:
            for group, (measured, reported, clipped) in step.items():
                assert reported == pytest.approx(measured, rel=1e-5), (run, group)  # the norm of the whole gradient
                assert reported > 100 * MAX_GRAD_NORM, (run, group)  # the clip binds
                assert clipped == pytest.approx(MAX_GRAD_NORM, rel=1e-4), (run, group)
        for h in r0[run]["history"]:  # logged: the mean pre-clip norm over the iteration's steps
            assert h["policy/grad_norm"] > 100 * MAX_GRAD_NORM and h["val/grad_norm"] > 100 * MAX_GRAD_NORM


def test_offloaded_run_resumes_exactly(ranks):
    out, (r0, _) = ranks
    assert r0["resumed"]["result"]["resumed_from"].endswith("checkpoint-1")
    assert sorted(p.name for p in (out / "offload" / "checkpoints" / "checkpoint-1").iterdir()) == [
        "rng_state_0.pt", "rng_state_1.pt", "scheduler.pt", "sharded", "trainer_state.json"]
    # iteration 1 from the checkpoint, iteration 2 recomputed from it: identical, down to the clipped norms
    assert r0["resumed"]["history"] == r0["offload"]["history"]
    assert r0["resumed"]["clip"] == r0["offload"]["clip"][2:]
    full, resumed = (load_file(out / run / "model" / "model.safetensors") for run in ("offload", "resumed"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_grpo_generation_gathers_the_sharded_policy_once_per_round(ranks):
    _, (r0, r1) = ranks
    for r in (r0, r1):
        g = r["grpo"]
        longest = max(len(c) for c in g["trl"]["completions"])
        assert longest > 5
        # TRL 1.16 on accelerate's FSDP2: every decoder layer all-gathered again for every generated token
        assert g["trl"]["gathers"] >= g["layers"] * longest
        # the project's trainer: each FSDP unit at most once for the whole round, the same completions
        assert 0 < g["project"]["gathers"] <= g["units"]
        assert g["project"]["completions"] == g["trl"]["completions"]
        # and afterwards every unit reshards after forward as accelerate set it: TRL's count again
        assert g["trl_after"] == g["trl"]
    assert r0["grpo"]["trl"]["completions"] != r1["grpo"]["trl"]["completions"]  # each rank its own prompts


def test_gpu_process_group_has_gloo_for_cpu_tensors_when_launched(monkeypatch):
    """On GPUs PPO's processes meet in a NCCL group with gloo beside it (offloaded gradients, CPU statistics); a
    single process that no launcher started names no backend, or accelerate would read a group that was never
    started (its state.py: a backend without LOCAL_RANK means get_world_size() on no group)."""
    from harness.train.ppo import process_group

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert [h.backend for h in process_group()] == ["cuda:nccl,cpu:gloo"]
    monkeypatch.delenv("LOCAL_RANK")
    assert process_group() == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert process_group() == []  # CPU: accelerate's gloo
