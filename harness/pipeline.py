"""One run, stage by stage: base model -> (reward model) -> policy -> evaluation -> record.

Every stage is content-addressed (harness.records.stages): rerunning a command reuses what is complete and trains nothing.
Inputs are loaded and checked before the first stage, so a bad dataset fails in seconds, not after training.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness import algorithms, console
from harness.algorithms import TrainingData
from harness.chat import TEMPLATES
from harness.config.checks import check, check_judge_keys, uses_reward_model
from harness.config.errors import ConfigError
from harness.eval import rewardbench
from harness.eval.categories import average, category_scores
from harness.eval.generation import make_lm
from harness.eval.suite import run_suite
from harness.models import ModelRef, base_model
from harness.records.results import (git_commit, index_row, provenance_versions, summary_table, upsert_index,
                                     write_result)
from harness.records import stages as stage_records
from harness.records.identity import AXES, NON_DETERMINING, axes_of, axes_used, determining_config, identity, run_id_of  # noqa: F401
from harness.records.stages import digest
from harness.records.tracking import Tracker
from harness.planning import planned_stages, policy_identity, policy_stage
from harness.report.grid import table_tags
from harness.train import common, reward

# ------------------------------------------------------------------------------------------------- stages
def load_training_data(cfg) -> TrainingData:
    """Load (and so validate) everything training reads, before any stage starts."""
    rm_plan = reward.plan(cfg, getattr(cfg.algorithm, "table2", False)) if uses_reward_model(cfg) else None
    return algorithms.get(cfg.algorithm).load_inputs(cfg, rm_plan)


def fit_training_data(cfg, inputs: TrainingData, base: ModelRef) -> TrainingData:
    """The inputs adjusted to the base model once it exists (e.g. DPO drops over-length pairs)."""
    return algorithms.get(cfg.algorithm).fit_inputs(cfg, inputs, base)


def train_in_process(cfg, base: ModelRef, inputs: TrainingData, out_dir: Path, rm, report_to: str, run_id: str,
                     log=None) -> dict:
    """Train the policy in this process (one of several when launched by harness.train.processes)."""
    return algorithms.get(cfg.algorithm).train(cfg, base, inputs, out_dir, rm, report_to, run_id,
                                               log or (lambda metrics, step: None))


def train_policy(cfg, base: ModelRef, inputs: TrainingData, tracker: Tracker, run_id: str, rm=None) -> tuple[ModelRef, dict]:
    if not algorithms.get(cfg.algorithm).trains:  # the SFT model is evaluated (best-of-N wraps it at evaluation)
        return base, {"reused": True, "path": base.path}
    stage = policy_stage(cfg, base, rm)
    if cfg.launch.processes * cfg.launch.nodes > 1:  # torchrun-style: accelerate starts the processes, this one waits and records
        from harness.train import processes

        work = lambda d: processes.train(cfg, base, rm, d, run_id, tracker.run_id if tracker.active else None)  # noqa: E731
    else:
        work = lambda d: train_in_process(cfg, base, inputs, d, rm, tracker.report_to, run_id, tracker.log_metrics)  # noqa: E731
    result, reused = stage.run(work, label=f"{cfg.algorithm.name} policy {stage.key}")
    if reused and (stage.dir / "log_history.json").exists():
        tracker.log_history(json.loads((stage.dir / "log_history.json").read_text()))
    return ModelRef(str(stage.dir / "model"), key=stage.key), {**result, "reused": reused, "key": stage.key, "dir": str(stage.dir)}


def evaluate(cfg, policy: ModelRef, rm) -> dict:
    """The suite's policy benchmarks (through the algorithm's wrapper, e.g. best-of-N), then its reward-model
    benchmarks."""
    policy_eval, rm_benchmarks = rewardbench.split_suite(cfg.eval)
    lm_factory = None
    wrap = algorithms.get(cfg.algorithm).wrap_policy(cfg, rm)
    if wrap is not None:
        lm_factory = lambda: wrap(make_lm(cfg.eval.backend, policy, cfg.model, cfg.eval.batch_size))  # noqa: E731
    # A wrapper keeps state between its calls (best-of-N: the chats behind rendered prompts), which answers from the
    # generation cache would bypass: its generations are not shared.
    out = run_suite(policy_eval, policy, policy_identity(policy, cfg, rm), cfg.model, cfg.paths.stages,
                    cfg.paths.mirror, lm_factory=lm_factory, share_generations=wrap is None)
    if rm_benchmarks:
        out |= rewardbench.evaluate(rm_benchmarks, rm, cfg.paths.stages, cfg.eval.batch_size, cfg.paths.mirror,
                                    cfg.model.dtype)
    return out


# ------------------------------------------------------------------------------------------------- record
def record(cfg, run_id: str, config_hash: str, stages: dict, benchmarks: dict, tracker: Tracker) -> dict:
    scores = {k: b.get("score") for k, b in benchmarks.items()}
    categories = category_scores(scores, {k: b["category"] for k, b in benchmarks.items()})
    policy = stages.get("policy", {})
    template = cfg.model.chat_template
    result = {
        "run_id": run_id,
        "config_hash": config_hash,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "axes": axes_of(cfg),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "stages": stages,
        "training": {k: v for k, v in policy.items() if k not in ("reused", "key", "dir", "path")}
        | {"steps_this_run": common.STEPS_THIS_PROCESS["count"]},
        "benchmarks": {k: {kk: vv for kk, vv in b.items() if kk != "traceback"} for k, b in benchmarks.items()},
        "categories": categories,
        "average": average(categories),
        "provenance": {
            "git_commit": git_commit(),
            "versions": provenance_versions(),
            "seed": cfg.seed,
            "effective_batch_size": policy.get("effective_batch_size"),
            "processes": policy.get("processes"),
            "chat_template": template or "tokenizer",
            "chat_template_sha": digest(TEMPLATES.get(template, "tokenizer's own"), 16),
        },
        "mlflow_run_id": tracker.run_id if tracker.active else None,
    }
    result["result_path"] = str(Path(cfg.paths.results) / "runs" / run_id / "result.json")
    write_result(Path(cfg.paths.results), result)
    upsert_index(Path(cfg.paths.results), index_row(result))
    tracker.log_result(result)
    return result


def writable(paths) -> None:
    """The results and stages directories can be written: found now, not when the first stage or the record is written."""
    for key in ("results", "stages"):
        path = Path(paths[key])
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"paths.{key}={path} is not writable ({exc.strerror or exc}); set paths.{key}=<a writable "
                              "directory> (or paths.home)") from None


def run(cfg: DictConfig) -> dict:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("a run is started once, not by torchrun / accelerate launch: set launch.processes=N and the "
                          "run starts its N training processes itself")
    check(cfg)
    writable(cfg.paths)
    stage_records.VERIFY["mode"] = cfg.verify_stages
    config_hash, run_id = identity(cfg)
    common.STEPS_THIS_PROCESS["count"] = 0  # several runs may share one process (a local multirun)
    if not cfg.dry_run and not cfg.eval.recompute:
        check_judge_keys(planned_stages(cfg))
    inputs = load_training_data(cfg)
    if cfg.dry_run:
        console.say(f"[harness] dry run {run_id}: axes {axes_of(cfg)}")
        return {"run_id": run_id, "config_hash": config_hash, "dry_run": True}
    tracker = Tracker(cfg.tracking)
    tags = axes_of(cfg) | {"config_hash": config_hash, "seed": cfg.seed, "run_id": run_id} | ({"sweep": cfg.sweep} if cfg.sweep else {})
    tags |= table_tags(axes_of(cfg))
    tracker.start(run_id, params=determining_config(cfg), tags={k: str(v) for k, v in tags.items()},
                  sweep=cfg.sweep, lock_dir=cfg.paths.results)
    try:
        base, base_info = base_model(cfg.model, cfg.paths.stages)
        inputs = fit_training_data(cfg, inputs, base)
        rm = reward.obtain(inputs.reward_model, cfg.paths.stages, tracker, run_id) if inputs.reward_model else None
        policy, policy_info = train_policy(cfg, base, inputs, tracker, run_id, rm)
        policy_info |= inputs.extra.get("data_counts", {})
        benchmarks = evaluate(cfg, policy, rm)
        stages = {"model": base_info | {"path": base.path}, "policy": policy_info} | ({"reward_model": rm.info} if rm else {})
        result = record(cfg, run_id, config_hash, stages, benchmarks, tracker)
    except BaseException as exc:  # a requeued job (time limit, preemption) exits with SystemExit: KILLED, not FAILED
        tracker.end("KILLED" if isinstance(exc, (SystemExit, KeyboardInterrupt)) else "FAILED")
        raise
    tracker.end("FINISHED")
    tracker.settle(Path(result["result_path"]).parent)  # a run that could not be logged is logged by the next invocation
    console.say(summary_table(result))
    return result
