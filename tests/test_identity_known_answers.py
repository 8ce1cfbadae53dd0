"""Known answers for a run's identity (harness.records.identity.determining_config): what it keeps (the fields that
decide the run's numbers, interpolations resolved), what it leaves out (where things go, how big an eval batch is,
the axes the algorithm does not read), and what a reward model trained inside the run adds (its base model and its
data: the run's dataset for Table 2's PPO, the RM's own otherwise). Configs composed, nothing loaded (about 0.3 s
per config)."""

from __future__ import annotations

import pytest

from harness import algorithms
from harness.config.compose import compose
from harness.records.identity import determining_config, identity

PAPER = ["model=tulu2_13b", "dataset=ultrafeedback_fg", "prompts=uf", "eval=smoke"]
DPO = [*PAPER, "algorithm=dpo"]


def test_dpo_keeps_its_axes_the_recipe_and_the_eval_without_its_batch_size():
    cfg = compose(DPO)
    out = determining_config(cfg)
    # no paths, tracking, scale...; no reward_model or prompts (DPO reads neither)
    assert sorted(out) == ["algorithm", "dataset", "eval", "model", "seed"]
    assert out["algorithm"] == algorithms.recipe(cfg.algorithm)
    assert sorted(out["eval"]) == ["backend", "benchmarks", "load_in_8bit", "placement", "seed", "suite",
                                   "tensor_parallel_size"]
    assert out["dataset"]["name"] == "ultrafeedback_fg" and out["model"]["path"] == "allenai/tulu-2-13b"


@pytest.mark.parametrize("change", [
    "paths.home=/elsewhere", "eval.batch_size=3", "eval.recompute=true",  # where, how fast, whether to redo
    "prompts=mixed", "reward_model=uf_70b",  # axes DPO does not read
])
def test_what_cannot_change_a_dpo_run_leaves_its_identity(change):
    assert identity(compose([*DPO, change])) == identity(compose(DPO))


def test_an_interpolation_is_keyed_by_its_value():
    """`${...}` is resolved first: a value written through an interpolation is the run of that value."""
    cfg = compose([*DPO, "paths.home=/data", "model.path=${paths.home}/tulu-2-13b", "dataset.seed=${seed}"])
    out = determining_config(cfg)
    assert out["model"]["path"] == "/data/tulu-2-13b" and out["dataset"]["seed"] == 42
    assert identity(cfg)[0] == identity(compose([*DPO, "model.path=/data/tulu-2-13b", "dataset.seed=42"]))[0]


def test_table2_ppo_keys_the_reward_model_it_trains_on_the_runs_dataset():
    cfg = compose([*PAPER, "algorithm=ppo", "algorithm.table2=true", "reward_model=none", "prompts=from_dataset",
                   "dataset=hh_rlhf_60k", "paths.home=/data", "model.path=${paths.home}/tulu-2-13b",
                   "dataset.seed=${seed}"])
    inputs = determining_config(cfg)["reward_model_inputs"]
    assert sorted(inputs) == ["dataset", "model"]
    assert inputs["model"]["name"] == "tulu2_13b" and inputs["model"]["path"] == "/data/tulu-2-13b"  # resolved
    assert inputs["dataset"]["name"] == "hh_rlhf_60k" and inputs["dataset"]["seed"] == 42


def test_a_reward_model_trained_for_best_of_n_is_keyed_by_its_own_data():
    """best-of-N reads no dataset and has no `table2` option: its RM trains on the RM's data, not the run's."""
    out = determining_config(compose([*PAPER, "algorithm=best_of_n", "reward_model=uf_70b", "dataset=helpsteer"]))
    assert out["reward_model"]["name"] == "uf_70b" and "dataset" not in out
    inputs = out["reward_model_inputs"]
    assert (inputs["model"]["name"], inputs["dataset"]["name"]) == ("tulu2_70b", "ultrafeedback_fg")


def test_no_reward_model_inputs_where_none_is_trained():
    # DPO reads no reward model, whatever the config names
    assert "reward_model_inputs" not in determining_config(compose([*DPO, "reward_model=uf_13b"]))
    # existing weights: the path is the key (reward_model.path), nothing trained here
    out = determining_config(compose([*PAPER, "algorithm=ppo", "reward_model=path", "reward_model.path=/rm"]))
    assert out["reward_model"]["path"] == "/rm" and "reward_model_inputs" not in out
    # neither weights nor data: the run's checks refuse it with their own message; its identity is still computed
    out = determining_config(compose([*PAPER, "algorithm=ppo", "reward_model=path"]))
    assert out["reward_model"]["path"] is None and "reward_model_inputs" not in out
