"""A run's axes, id and log path (harness.records.identity): which grid axes a run reads decides its run id and the
table cells it fills, so an axis it does not read must show "none" (every config field in a key: test_key_completeness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.compose import compose
from harness.records.identity import AXES, axes_of, axes_used, identity, run_log_path

PAPER = ["model=tulu2_13b", "dataset=ultrafeedback_fg", "prompts=uf", "eval=smoke"]


@pytest.mark.parametrize("overrides, used", [
    (["algorithm=dpo"], ("model", "dataset", "algorithm")),
    (["algorithm=none"], ("model", "algorithm")),
    (["algorithm=none", "prompts=from_dataset"], ("model", "algorithm")),  # prompts it does not read
    (["algorithm=ppo", "reward_model=uf_13b"], ("model", "algorithm", "reward_model", "prompts")),
    (["algorithm=ppo", "reward_model=uf_13b", "prompts=from_dataset"],
     ("model", "algorithm", "reward_model", "prompts", "dataset")),  # its prompts are the dataset's
    (["algorithm=ppo", "algorithm.table2=true"], ("model", "algorithm", "reward_model", "dataset")),
    (["algorithm=grpo", "algorithm.reward=gsm8k"], ("model", "algorithm", "prompts")),  # no reward model read
    (["algorithm=none", "reward_model=uf_13b", "eval=rewardbench"], ("model", "algorithm", "reward_model")),
])
def test_a_run_reads_exactly_its_algorithms_axes(overrides, used):
    cfg = compose([*PAPER, *overrides])
    assert axes_used(cfg) == used
    assert axes_of(cfg) == {a: cfg[a].name if a in used else "none" for a in AXES} | {"eval_suite": cfg.eval.suite}


def test_run_id_names_the_axes_seed_and_config_hash_and_its_log_sits_beside_its_result(tmp_path):
    cfg = compose([*PAPER, "algorithm=dpo", f"paths.home={tmp_path}"])
    config_hash, run_id = identity(cfg)
    assert run_id == f"tulu2_13b-ultrafeedback_fg-dpo-none-none-s42-{config_hash[:8]}" and len(config_hash) == 16
    assert run_log_path(cfg) == Path(tmp_path) / "results" / "runs" / run_id / "run.log"
