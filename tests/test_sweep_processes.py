"""Multi-process training inside one job (harness.train.processes): 2 CPU processes (gloo) through accelerate launch
keep the recipe's effective batch, and take the same optimisation steps as 1 process with gradient accumulation; the
policy (DPO) and a reward model trained for the run alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from direction import max_weight_change, weights

from harness.pipeline import load_training_data, obtain_reward_model, train_policy
from harness.records.tracking import Tracker
from harness.train.common import STEPS_THIS_PROCESS

STEPS = 4


def train(cfg, base):
    policy, info = train_policy(cfg, base, load_training_data(cfg), Tracker(cfg.tracking), "test-processes")
    history = json.loads((Path(info["dir"]) / "log_history.json").read_text())
    return info, {e["step"]: e["loss"] for e in history if "loss" in e}


@pytest.mark.slow
def test_two_processes_keep_the_effective_batch_of_one_with_accumulation(run_config, tiny_base, tmp_path):
    common = ("tracking=none", f"algorithm.max_steps={STEPS}", "algorithm.logging_steps=1")
    one, loss_one = train(run_config(*common, f"paths.stages={tmp_path / 'one'}"), tiny_base)
    before = STEPS_THIS_PROCESS["count"]
    two, loss_two = train(run_config(*common, f"paths.stages={tmp_path / 'two'}", "launch.processes=2"), tiny_base)
    assert STEPS_THIS_PROCESS["count"] - before == STEPS  # the run records the steps its processes took

    assert (one["processes"], one["per_device_batch_size"], one["gradient_accumulation_steps"]) == (1, 8, 2)
    assert (two["processes"], two["per_device_batch_size"], two["gradient_accumulation_steps"]) == (2, 8, 1)
    assert one["effective_batch_size"] == two["effective_batch_size"] == 16
    assert one["key"] == two["key"]  # the process count is not part of what a stage computes
    assert one["global_step"] == two["global_step"] == STEPS
    # Same examples in each optimiser step (process 0 and 1 take the micro-batches accumulation would take in turn),
    # so the same losses, up to float summation order.
    assert sorted(loss_one) == sorted(loss_two) == list(range(1, STEPS + 1))
    for step in loss_one:
        assert loss_two[step] == pytest.approx(loss_one[step], rel=1e-3, abs=1e-4), step
    # ... and the steps moved the policy, by the same update in both: the saved models match each other, not the base
    moved = max_weight_change(Path(one["dir"]) / "model", tiny_base.path)
    assert moved > 1e-3
    assert max_weight_change(Path(one["dir"]) / "model", Path(two["dir"]) / "model") < 0.01 * moved
    assert (tmp_path / "two" / "policy" / two["key"] / "launch" / "processes.log").exists()


@pytest.mark.slow
def test_the_reward_model_trains_on_the_jobs_processes_as_one_process_with_its_effective_batch(
        run_config, tiny_base, tiny_reward_model, tmp_path):
    """`reward_model=tiny launch.processes=2`: the reward-model stage runs through accelerate launch (2 gloo processes,
    data parallel) and takes the steps the session's 1-process reward model took (tests/conftest.py)."""
    shutil.copytree(Path(tiny_base.path).parents[1], tmp_path / "model")  # the tiny base model, not built again
    cfg = run_config("algorithm=ppo", "reward_model=tiny", "tracking=none", "launch.processes=2",
                     f"paths.stages={tmp_path}")
    rm = obtain_reward_model(cfg, load_training_data(cfg), Tracker(cfg.tracking), "test-rm-processes")
    one, two = tiny_reward_model.info, rm.info
    assert not two["reused"] and two["key"] == one["key"]  # the process count is not part of what the stage computes
    assert (one["processes"], one["per_device_batch_size"], one["gradient_accumulation_steps"]) == (1, 16, 1)
    assert (two["processes"], two["per_device_batch_size"], two["gradient_accumulation_steps"]) == (2, 8, 1)
    assert (tmp_path / "reward_model" / two["key"] / "launch" / "processes.log").exists()
    losses = [{e["step"]: e["loss"] for e in json.loads((Path(info["dir"]) / "log_history.json").read_text()) if "loss" in e}
              for info in (one, two)]
    assert one["global_step"] == two["global_step"] == len(losses[0]) == len(losses[1]) > 10
    for step, loss in losses[0].items():
        assert losses[1][step] == pytest.approx(loss, rel=1e-3, abs=1e-4), step
    # the held-out scores are the 1-process model's: every process scored the same pairs with the same weights
    assert two["heldout_accuracy"] == one["heldout_accuracy"]
    assert two["heldout_margin"] == pytest.approx(one["heldout_margin"], rel=1e-3)
    # ... and the same update: the saved models match each other, not the base model (its decoder weights)
    trained, base = weights(Path(one["dir"]) / "model"), weights(tiny_base.path)
    moved = max(float((trained[k] - base[k]).abs().max()) for k in base.keys() & trained.keys())
    assert moved > 1e-3 and max_weight_change(Path(one["dir"]) / "model", Path(two["dir"]) / "model") < 0.01 * moved
