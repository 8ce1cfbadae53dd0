"""PPO sharded with torch FSDP2 (harness/train/fsdp.py), 2 CPU processes on gloo: every model PPO holds is sharded
(DTensors, each rank holding half), the run's numbers are those of the same run unsharded (DDP), and a run resumed
from a sharded checkpoint continues exactly."""

import json

import pytest
import torch
from safetensors.torch import load_file

from harness.config.errors import ConfigError
from harness.train.sharding import check_ppo_sharding

from conftest import torchrun_two

METRICS = ("objective/rm_score", "objective/kl", "objective/entropy", "loss/policy", "loss/value", "policy/approxkl",
           "val/response_length", "lr")


@pytest.fixture(scope="module")
def ranks(tiny_base, tiny_reward_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    torchrun_two("fsdp_worker.py", tiny_base.path, tiny_reward_model.ref.path, str(out))
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_every_model_is_sharded_over_both_processes(ranks):
    _, (r0, r1) = ranks
    for model in ("policy", "value", "ref", "reward_model"):
        assert all(glob is not None for _, glob in r0[model]), model  # every parameter is a DTensor
        # the two ranks' shards add up to each parameter exactly once
        assert [a + b for (a, _), (b, _) in zip(r0[model], r1[model])] == [glob for _, glob in r0[model]], model
    # a decoder layer's weight (dim 0 even) is split in half; the embedding too
    assert all(local * 2 == glob for local, glob in r0["policy"])
    assert sum(local for local, _ in r0["policy"]) * 2 == sum(glob for _, glob in r0["policy"])


def test_sharded_run_has_the_unsharded_runs_numbers(ranks):
    out, (r0, _) = ranks
    assert [h["step"] for h in r0["fsdp"]] == [h["step"] for h in r0["ddp"]] == [1, 2]
    for ddp, sharded in zip(r0["ddp"], r0["fsdp"]):
        for metric in METRICS:
            assert sharded[metric] == pytest.approx(ddp[metric], rel=1e-4, abs=1e-6), metric
    assert abs(r0["fsdp"][1]["objective/kl"]) > 1e-4  # the second rollout comes from an updated policy
    # the final model is written whole (a plain HF checkpoint) and equals the unsharded run's
    ddp_model, fsdp_model = (load_file(out / run / "model" / "model.safetensors") for run in ("ddp", "fsdp"))
    assert ddp_model.keys() == fsdp_model.keys()
    for key in ddp_model:
        torch.testing.assert_close(fsdp_model[key], ddp_model[key], rtol=1e-4, atol=1e-6)


def test_resumed_sharded_run_continues_exactly(ranks):
    out, (r0, _) = ranks
    assert r0["resumed"].endswith("checkpoint-1")
    assert sorted(p.name for p in (out / "fsdp" / "checkpoints" / "checkpoint-1").iterdir()) == [
        "rng_state_0.pt", "rng_state_1.pt", "scheduler.pt", "sharded", "trainer_state.json"]
    assert r0["resumed_history"] == r0["fsdp"]  # iteration 1 from the checkpoint, iteration 2 recomputed: identical
    full, resumed = (load_file(out / run / "model" / "model.safetensors") for run in ("fsdp", "resumed"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_ppo_refuses_deepspeed_sharding():
    with pytest.raises(ConfigError, match="launch.sharding='zero3'.*FSDP2.*'fsdp'"):
        check_ppo_sharding("zero3")
