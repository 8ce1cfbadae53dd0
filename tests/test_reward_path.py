"""`reward_model=path reward_model.path=<dir>`: PPO scores its rollouts with the saved reward model at that path, and
no reward model is trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from harness.pipeline import run


def first_rm_score(result: dict) -> float:
    history = json.loads((Path(result["stages"]["policy"]["dir"]) / "log_history.json").read_text())
    return history[0]["objective/rm_score"]


def test_ppo_scores_with_the_reward_model_at_the_given_path(run_config, tiny_reward_model, shared_stages, tmp_path):
    saved = tmp_path / "rm"
    shutil.copytree(tiny_reward_model.ref.path, saved)
    negated = tmp_path / "rm_negated"  # the same model with its score head's sign flipped
    shutil.copytree(saved, negated)
    weights = load_file(str(negated / "model.safetensors"))
    head = [k for k in weights if k.startswith("score.")]
    assert head, sorted(weights)
    save_file({k: -v if k in head else v for k, v in weights.items()}, str(negated / "model.safetensors"),
              metadata={"format": "pt"})

    trained_rms = lambda: set((Path(shared_stages) / "reward_model").glob("*"))  # noqa: E731
    before = trained_rms()
    results = {}
    for name, path in (("saved", saved), ("negated", negated)):
        cfg = run_config("algorithm=ppo", "reward_model=path", f"reward_model.path={path}", "algorithm.max_steps=1",
                         "eval=smoke", "tracking=none", f"paths.home={tmp_path / name}")
        results[name] = run(cfg)
        assert results[name]["stages"]["reward_model"]["path"] == str(path)
    assert trained_rms() == before  # nothing trained: the given model was used as it is
    # the first rollout is the reference policy's own (same seed in both runs): scored by the negated head, its
    # mean score flips sign, so each run read the model at its own path
    score = first_rm_score(results["saved"])
    assert abs(score) > 1e-3
    assert first_rm_score(results["negated"]) == pytest.approx(-score, abs=1e-4)
