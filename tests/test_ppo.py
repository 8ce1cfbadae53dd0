"""The project's PPO on the tiny model: it raises the reward-model score with bounded KL, a huge KL coefficient holds
the policy at the reference, an interrupted run resumes to the same end, and the pipeline trains it as a stage."""

import json
from pathlib import Path

import pytest
import torch
from conftest import compose

from harness import data
from harness.train import ppo
from harness.train.common import STEPS_THIS_PROCESS
from harness.train.reward import RewardScorer, policy_score

REQUIRED_METRICS = ("objective/rm_score", "objective/kl", "objective/entropy", "policy/clipfrac", "policy/approxkl",
                    "loss/value", "val/response_length", "val/eos_fraction")


def run_ppo(out: Path, base, rm, *overrides):
    cfg = compose("algorithm=ppo", "reward_model=tiny", *overrides)
    logged = []
    result = ppo.train(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out,
                       lambda metrics, step: logged.append({"step": step, **metrics}), cfg.seed)
    return result, logged


@pytest.fixture(scope="module")
def ppo_run(tiny_base, tiny_reward_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    return (out, *run_ppo(out, tiny_base, tiny_reward_model))


@pytest.fixture(scope="module")
def heldout_prompts():
    return [r["prompt"] for r in data.load_prompts(compose().prompts)][:64]


def test_ppo_raises_the_reward_model_score_with_bounded_kl(ppo_run, tiny_base, tiny_reward_model, heldout_prompts):
    out, result, logged = ppo_run
    assert [m["step"] for m in logged] == list(range(1, 9))  # 8 iterations: 2 passes over 128 prompts, 32 a batch
    assert result["global_step"] == 16  # 2 optimiser steps (minibatch 16) per iteration
    for metric in REQUIRED_METRICS:
        assert all(metric in m for m in logged), metric
    first, late = logged[0]["objective/rm_score"], sum(m["objective/rm_score"] for m in logged[-3:]) / 3
    assert late > first + 0.5
    # the paper's raw-logit log-probs of samples drawn at T=0.7: an estimate that can dip just below 0
    assert all(-1 < m["objective/kl"] < 30 for m in logged[1:])
    assert logged[0]["objective/kl"] == pytest.approx(0, abs=1e-4)  # the first rollout is the reference's own
    assert logged[-1]["val/eos_fraction"] > 0.8
    # an independent measurement: fresh samples from the saved policy, scored by the reward model
    scorer = RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)
    before = policy_score(tiny_base, "tulu", heldout_prompts, scorer)
    after = policy_score(type(tiny_base)(str(out / "model")), "tulu", heldout_prompts, scorer)
    assert after > before + 0.5
    assert json.loads((out / "log_history.json").read_text()) == logged


def test_huge_kl_coefficient_keeps_the_policy_at_the_reference(ppo_run, tiny_base, tiny_reward_model, tmp_path):
    _, _, free = ppo_run
    _, held = run_ppo(tmp_path, tiny_base, tiny_reward_model, "algorithm.kl_coef=20")  # the same 8 iterations
    assert max(m["objective/kl"] for m in held) < 2.0
    assert held[-1]["objective/kl"] < 0.3 * free[-1]["objective/kl"]


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_end(ppo_run, tiny_base, tiny_reward_model, tmp_path, monkeypatch):
    out_full, full, full_log = ppo_run
    save = ppo.PPOTrainer.save_checkpoint

    def save_then_die(self):
        save(self)
        raise Interrupted(f"killed after checkpoint {self.iteration}")

    monkeypatch.setattr(ppo.PPOTrainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted, match="after checkpoint 2"):
        run_ppo(tmp_path, tiny_base, tiny_reward_model)
    monkeypatch.setattr(ppo.PPOTrainer, "save_checkpoint", save)
    assert (tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
    assert not (tmp_path / "model").exists()

    steps_before = STEPS_THIS_PROCESS["count"]
    resumed, resumed_log = run_ppo(tmp_path, tiny_base, tiny_reward_model)
    assert resumed["resumed_from"].endswith("checkpoint-2")
    assert resumed["global_step"] == full["global_step"] == 16
    assert STEPS_THIS_PROCESS["count"] - steps_before == 12  # only the 6 iterations after the checkpoint
    assert [m["step"] for m in resumed_log] == list(range(3, 9))
    # model, optimiser, scheduler and RNG states were restored: the same run, not merely the same length
    assert resumed_log[-1]["objective/rm_score"] == pytest.approx(full_log[-1]["objective/rm_score"], abs=1e-4)
    a = _weights(out_full / "model")
    b = _weights(tmp_path / "model")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_value_model_from_reward_model_needs_its_tokenizer(tiny_base, tiny_reward_model, tmp_path):
    import shutil

    from harness.chat import apply_template
    from harness.config.errors import ConfigError
    from harness.models import ModelRef
    from harness.config.schema import TinyModelSpec
    from harness.tiny.model import build_tokenizer
    from harness.train.reward import RewardModel

    # the tiny reward model's weights with another vocabulary's tokenizer beside them
    shutil.copytree(tiny_reward_model.ref.path, tmp_path / "rm")
    other = build_tokenizer(TinyModelSpec(vocab_size=400))
    apply_template(other, "tulu")
    other.save_pretrained(tmp_path / "rm")
    rm = RewardModel(ModelRef(str(tmp_path / "rm")), "tulu", {})
    with pytest.raises(ConfigError, match="value_from_reward_model=false"):
        run_ppo(tmp_path / "out", tiny_base, rm, "algorithm.max_steps=1")


def test_pipeline_reuses_the_reward_model_stage_and_logs_each_iteration(run_config, tiny_reward_model, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from harness import pipeline

    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under the working directory
    cfg = run_config("algorithm=ppo", "reward_model=tiny", "eval=rewardbench_tiny", "algorithm.max_steps=2")
    first = pipeline.run(cfg)
    assert first["axes"] | {"eval_suite": None} == {"model": "tiny", "dataset": "none", "algorithm": "ppo",
                                                    "reward_model": "tiny", "prompts": "tiny", "eval_suite": None}
    rm_stage = first["stages"]["reward_model"]
    assert rm_stage["key"] == tiny_reward_model.ref.key and rm_stage["reused"]
    assert first["stages"]["policy"]["reused"] is False and first["stages"]["policy"]["global_step"] == 4
    # RewardBench scored the run's reward model (the tiny one), exactly as scoring it directly does
    from harness.eval import rewardbench

    scorer = RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)
    direct = rewardbench.run(cfg.eval.benchmarks.rewardbench, scorer, tmp_path / "direct")["score"]
    assert first["benchmarks"]["rewardbench"]["score"] == pytest.approx(direct)
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(first["mlflow_run_id"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "objective/rm_score")] == [1, 2]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert [c.info.run_name for c in children] == ["reward_model"]
    assert "loss" in children[0].data.metrics  # its training curve, replayed from the reused stage

    again = pipeline.run(cfg)
    assert again["stages"]["policy"]["reused"] and again["training"]["steps_this_run"] == 0
    assert again["benchmarks"]["rewardbench"]["reused"]


def test_table2_switch_takes_reward_model_and_prompts_from_the_dataset(tiny_base, tiny_reward_model):
    from harness import pipeline
    from harness.records.stages import Stage
    from harness.train import reward

    cfg = compose("algorithm=ppo", "algorithm.table2=true", "reward_model=tiny", "dataset=tiny")
    inputs = pipeline.load_training_data(cfg)
    pairs = data.load_preferences(cfg.dataset)
    # every pair contributes its prompt, as prompts=from_dataset (harness.data.prompts)
    assert [r["prompt"] for r in inputs.train] == [r["prompt"] for r in pairs]
    assert pipeline.axes_of(cfg)["dataset"] == "tiny" and pipeline.axes_of(cfg)["prompts"] == "none"
    # the reward model trained on the run's dataset is the tiny reward model's stage: trained once, shared
    key = Stage("reward_model", reward.stage_spec(inputs.reward_model, tiny_base), Path(tiny_reward_model.info["dir"]).parent.parent).key
    assert key == tiny_reward_model.ref.key


def test_bad_batch_sizes_fail_with_a_clear_error(tiny_base, tiny_reward_model, tmp_path):
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match="rollout_batch_size=24 is not a multiple of.*effective_batch_size=16"):
        run_ppo(tmp_path, tiny_base, tiny_reward_model, "algorithm.rollout_batch_size=24")
    with pytest.raises(ConfigError, match="minibatch_size=8 differs from algorithm.effective_batch_size=16"):
        run_ppo(tmp_path, tiny_base, tiny_reward_model, "algorithm.minibatch_size=8")


def test_prompts_too_long_for_the_budget_are_dropped(tiny_base):
    from datasets import Dataset

    from harness.config.errors import ConfigError
    from harness.models import load_tokenizer

    tok = load_tokenizer(tiny_base, "tulu")
    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": text}]} for text in ("Hi", "What is 3 + 4? " * 40)])
    kept, ids = ppo.keep_short_prompts(rows, tok, 30)
    assert [r["prompt"][0]["content"] for r in kept] == ["Hi"] and len(ids[0]) <= 30
    with pytest.raises(ConfigError, match="all 2 prompts are longer than 3 tokens"):
        ppo.keep_short_prompts(rows, tok, 3)
    alg = compose("algorithm=ppo", "reward_model=tiny").algorithm
    assert ppo.prompt_budget(alg, 1024) == alg.max_length - alg.max_new_tokens == 224  # tiny: 256 - 32
    assert ppo.prompt_budget(compose("algorithm=ppo", "model=tulu2_13b").algorithm, 1024) == 1024  # paper: 2048 - 1024
