"""The spine end to end at tiny size: tiny SFT model -> DPO (TRL) -> evaluation (lm-eval) -> results + MLflow."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from conftest import ROOT, checkout_commit, compose
from direction import max_weight_change, preference_margin
from harness.data.preferences import asset_path
from harness.config.errors import ConfigError
from harness.pipeline import run
from harness.records.results import read_index
from harness.config.schema import CATEGORIES


PAPER_CATEGORIES = {"factuality": ["mmlu"], "reasoning": ["gsm8k", "bbh"], "coding": ["humaneval_plus", "mbpp_plus"],
                    "truthfulness": ["truthfulqa"], "safety": ["toxigen", "xstest"],
                    "inst_following": ["alpaca_eval1", "alpaca_eval2", "ifeval"]}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, tiny_base):
    """`python -m harness` with its embedded defaults, in-process, results under a fresh home. Its stages are its own
    (the session's tiny base model copied in), so it trains whatever other tests ran before it."""
    home, stages = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("run_stages")
    base_stage = Path(tiny_base.path).parent
    shutil.copytree(base_stage, stages / base_stage.parent.name / base_stage.name)
    cfg = compose(f"paths.home={home}", f"paths.stages={stages}")
    return cfg, run(cfg)


def test_default_run_writes_complete_results(default_run):
    cfg, result = default_run
    on_disk = json.loads(Path(result["result_path"]).read_text())
    for key in ("run_id", "config_hash", "axes", "config", "stages", "training", "benchmarks", "categories", "average", "provenance"):
        assert key in on_disk, key
    assert set(on_disk["categories"]) == set(CATEGORIES)
    assert on_disk["axes"] | {} == {"model": "tiny", "dataset": "tiny", "algorithm": "dpo", "reward_model": "none",
                                    "prompts": "none", "eval_suite": cfg.eval.suite}
    for key, bench in on_disk["benchmarks"].items():
        assert (Path(bench["dir"]) / bench["samples"]).exists(), key
    # the paper's categories (protocol): each the mean of its benchmarks, the Average the mean of the six
    scores = {k: b["score"] for k, b in on_disk["benchmarks"].items()}
    assert set(scores) == {b for bs in PAPER_CATEGORIES.values() for b in bs}
    for category, members in PAPER_CATEGORIES.items():
        assert on_disk["categories"][category] == pytest.approx(sum(scores[b] for b in members) / len(members)), category
    assert on_disk["average"] == pytest.approx(sum(on_disk["categories"].values()) / 6)
    assert on_disk["config"] == OmegaConf.to_container(cfg, resolve=True)  # the resolved config, as run
    prov = on_disk["provenance"]
    assert prov["effective_batch_size"] == cfg.algorithm.effective_batch_size
    assert prov["seed"] == 42 and prov["chat_template"] == "tulu" and prov["versions"]["trl"] == "1.16.0"
    assert prov["git_commit"] == checkout_commit()
    rows = read_index(Path(cfg.paths.results))
    assert [r["run_id"] for r in rows] == [result["run_id"]]


def test_dpo_moves_heldout_margin_the_right_way(default_run, tiny_base):
    cfg, result = default_run
    training = result["training"]
    before, after = training["heldout_before_rewards/margins"], training["heldout_after_rewards/margins"]
    assert after > before + 1.0, (before, after)
    assert training["heldout_after_rewards/accuracies"] > 0.9
    assert training["steps_this_run"] == training["global_step"] > 0
    # The model evaluation loads (the saved stage model, not the live trainer) is the trained one: on held-out pairs,
    # its log p(chosen) - log p(rejected) beats the base model's by the trainer's own margin gain / beta.
    saved = Path(result["stages"]["policy"]["dir"]) / "model"
    pairs = asset_path(cfg.dataset.files.test)
    gain = preference_margin(saved, "tulu", pairs) - preference_margin(tiny_base.path, "tulu", pairs)
    assert gain == pytest.approx((after - before) / cfg.algorithm.beta, rel=0.05)
    assert max_weight_change(saved, tiny_base.path) > 0


def test_same_config_twice_trains_nothing_and_scores_the_same(default_run):
    cfg, first = default_run
    second = run(cfg)
    assert second["training"]["steps_this_run"] == 0
    assert all(stage["reused"] for stage in second["stages"].values())
    assert all(b["reused"] for b in second["benchmarks"].values())
    assert {k: b["score"] for k, b in second["benchmarks"].items()} == {k: b["score"] for k, b in first["benchmarks"].items()}
    assert second["run_id"] == first["run_id"]
    assert len(read_index(Path(cfg.paths.results))) == 1  # the same run is recorded once


def test_mlflow_holds_params_tags_and_metrics(default_run):
    cfg, result = default_run
    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.tracking.uri)
    run_ = client.get_run(result["mlflow_run_id"])
    assert run_.info.status == "FINISHED"
    assert run_.data.params["algorithm.beta"] == "0.1" and run_.data.params["dataset.name"] == "tiny"
    assert {k: run_.data.tags[k] for k in ("model", "dataset", "algorithm", "config_hash")} == {
        "model": "tiny", "dataset": "tiny", "algorithm": "dpo", "config_hash": result["config_hash"]}
    metrics = run_.data.metrics
    for key in result["benchmarks"]:
        assert metrics[f"eval/{key}"] == pytest.approx(result["benchmarks"][key]["score"])
    # TRL's own training curve (report_to=mlflow) landed in the same run
    curve = client.get_metric_history(run_.info.run_id, "loss")
    assert len(curve) >= result["training"]["global_step"] // cfg.algorithm.logging_steps
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"config.json", "result.json"} <= artifacts
    assert f"{cfg.paths.results}/mlartifacts/" in run_.info.artifact_uri  # never ./mlruns in the cwd


def test_unreachable_tracking_server_warns_once_and_keeps_results(run_config, capsys):
    with socket.socket() as held:  # bound and held, never listening: connections to it are refused
        held.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{held.getsockname()[1]}"
        cfg = run_config("algorithm=none", "eval=smoke", f"tracking.uri={uri}", "tracking.timeout_s=2")
        with pytest.warns(UserWarning, match=f"MLflow tracking at {uri} is unavailable"):
            result = run(cfg)
    assert Path(result["result_path"]).exists() and result["mlflow_run_id"] is None
    assert capsys.readouterr().out.count("WARNING: MLflow tracking") == 1


# ----------------------------------------------------------------------------------------------- bad input
def test_ppo_without_reward_model_is_refused_before_any_work(run_config):
    cfg = run_config("algorithm=ppo", "reward_model=none")
    with pytest.raises(ConfigError, match=r"algorithm=ppo needs a reward model but reward_model=none; choose one of"):
        run(cfg)
    assert not Path(cfg.paths.results, "runs").exists()


def test_dpo_with_a_reward_model_is_refused(run_config):
    with pytest.raises(ConfigError, match="algorithm=dpo learns from preference pairs directly"):
        run(run_config("reward_model.name=uf_13b"))


def test_dataset_missing_columns_is_named_before_training(run_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "chosen": [{"role": "assistant", "content": "a"}], "response_b": "b"}) + "\n")
    cfg = run_config(f"dataset.files.train={bad}", "dataset.eval_split=null")
    trained = lambda: {p for kind in ("model", "policy", "eval") for p in Path(cfg.paths.stages).glob(f"{kind}/*")}  # noqa: E731
    stages_before = trained()
    with pytest.raises(ConfigError, match=r"missing column\(s\) \['rejected'\].*found \['prompt', 'chosen', 'response_b'\]"):
        run(cfg)
    assert trained() == stages_before  # nothing built, trained or evaluated


# ----------------------------------------------------------------------------------------------- kill and resume
def test_killed_training_is_not_complete_and_resumes_from_its_checkpoint(tmp_path, shared_stages, tiny_base):
    overrides = [f"paths.home={tmp_path}", f"paths.stages={shared_stages}", "algorithm.epochs=2",
                 "algorithm.save_steps=4", "eval=smoke", "tracking=none", "seed=7"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    log = tmp_path / "killed.log"
    policy_dirs = Path(shared_stages) / "policy"
    existing = set(policy_dirs.glob("*"))
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness", *overrides], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline, checkpoint = time.time() + 600, None
        while time.time() < deadline and checkpoint is None and proc.poll() is None:
            found = [p for d in set(policy_dirs.glob("*")) - existing for p in d.glob("checkpoints/checkpoint-*")
                     if (p / "trainer_state.json").exists()]
            checkpoint = found[0] if found else None
            time.sleep(0.05)
        # paused at once: the first checkpoint is at step 4 of some 30, so the run cannot have finished (and deleted its
        # checkpoints) before it stops; what is on disk is then looked at while nothing moves
        with contextlib.suppress(ProcessLookupError):  # (already gone: the assertion below says why)
            os.killpg(proc.pid, signal.SIGSTOP)
        try:
            assert checkpoint is not None, "training never wrote a checkpoint:\n" + log.read_text()[-3000:]
            stage_dir = checkpoint.parent.parent
            assert (checkpoint / "trainer_state.json").exists() and not (stage_dir / "COMPLETE").exists()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (stage_dir / "COMPLETE").exists()

    resumed = run(compose(*overrides))
    assert resumed["stages"]["policy"]["dir"] == str(stage_dir)
    assert resumed["training"]["resumed_from"] is not None
    assert (stage_dir / "COMPLETE").exists()
    assert resumed["training"]["steps_this_run"] < resumed["training"]["global_step"]
    # the same recipe and seed, never interrupted, in a store of its own (sharing only the base model)
    fresh_store = tmp_path / "fresh_stages"
    (fresh_store / "model").mkdir(parents=True)
    (fresh_store / "model" / tiny_base.key).symlink_to(Path(shared_stages) / "model" / tiny_base.key)
    fresh = run(compose(f"paths.home={tmp_path / 'fresh'}", f"paths.stages={fresh_store}", *overrides[2:]))
    assert fresh["training"]["resumed_from"] is None
    assert resumed["training"]["global_step"] == fresh["training"]["global_step"]
    # model, optimiser, scheduler, data order and RNG were restored: the same weights, not merely the same length
    assert max_weight_change(stage_dir / "model", Path(fresh["stages"]["policy"]["dir"]) / "model") < 1e-5
    assert max_weight_change(stage_dir / "model", tiny_base.path) > 1e-3


def test_a_run_started_by_torchrun_is_refused_with_the_way_to_use_several_processes(run_config, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun / accelerate launch set in every rank
    with pytest.raises(ConfigError, match="set launch.processes=N"):
        run(run_config())
