"""A resumed training run reports the same training loss as an uninterrupted one: over the whole log history, not
only the steps after the resume."""

from __future__ import annotations

import shutil

import pytest

from harness.pipeline import run
from harness.train import common, dpo


def test_train_loss_after_a_resume_covers_the_whole_run(run_config, monkeypatch):
    overrides = ("algorithm=dpo", "eval=smoke", "tracking=none", "seed=515", "algorithm.epochs=1", "algorithm.save_steps=4")

    class KilledAfterACheckpoint(common.CountSteps):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:  # checkpoint-4 is whole; steps 5 and 6 are lost
                raise KeyboardInterrupt("killed")
            return super().on_step_end(args, state, control, **kwargs)

    monkeypatch.setattr(dpo, "CountSteps", KilledAfterACheckpoint)
    with pytest.raises(KeyboardInterrupt):
        run(run_config(*overrides))
    monkeypatch.undo()
    resumed = run(run_config(*overrides))
    policy = resumed["stages"]["policy"]
    assert policy["resumed_from"].endswith("checkpoint-4")

    shutil.rmtree(policy["dir"])  # the same run, uninterrupted
    whole = run(run_config(*overrides))["stages"]["policy"]
    assert whole["resumed_from"] is None and whole["global_step"] == policy["global_step"]
    # logged losses are rounded to 4 decimals by transformers
    assert policy["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-3, abs=1e-4)
