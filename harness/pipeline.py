"""One run, stage by stage: base model -> (reward model) -> policy -> evaluation -> record.

Every stage is content-addressed (harness.stages): rerunning a command reuses what is complete and trains nothing.
Inputs are loaded and checked before the first stage, so a bad dataset fails in seconds, not after training.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness import data
from harness.chat import TEMPLATES
from harness.checks import check
from harness.eval.categories import average, category_scores
from harness.eval.suite import benchmark_stage, run_suite
from harness.models import ModelRef, base_model, base_model_stage
from harness.results import git_commit, index_row, provenance_versions, summary_table, upsert_index, write_result
from harness.stages import Stage, digest
from harness.tracking import Tracker
from harness.train import common

# Config keys that never change what a run computes (where things go, how they are logged, how big a micro-batch is).
NON_DETERMINING = {"paths", "tracking", "dry_run", "sweep", "launch"}
ALGORITHM_NON_DETERMINING = {"logging_steps", "save_steps", "per_device_batch_size", "activation_checkpointing"}
# Which axes each algorithm reads; the others are left out of its run's identity.
AXES_USED = {
    "none": ("model",),
    "dpo": ("model", "dataset", "algorithm"),
    "ppo": ("model", "algorithm", "reward_model", "prompts"),
    "grpo": ("model", "algorithm", "reward_model", "prompts"),
}
AXES = ("model", "dataset", "algorithm", "reward_model", "prompts")


@dataclass
class TrainingData:
    train: Any = None
    heldout: Any = None
    extra: dict = field(default_factory=dict)


def axes_used(cfg) -> tuple[str, ...]:
    used = AXES_USED.get(cfg.algorithm.name, AXES)
    if getattr(cfg.algorithm, "table2", False):
        used = (*used, "dataset")
    return used


def axes_of(cfg) -> dict[str, str]:
    """The run's point in the grid; axes the algorithm does not read are "none"."""
    used = axes_used(cfg)
    return {axis: (cfg[axis].name if axis in used else "none") for axis in AXES} | {"eval_suite": cfg.eval.suite}


def determining_config(cfg) -> dict:
    """Exactly the configuration that determines a run's numbers: its identity and config hash."""
    full = OmegaConf.to_container(cfg, resolve=True)
    used = axes_used(cfg)
    out = {k: v for k, v in full.items() if k not in NON_DETERMINING and (k not in AXES or k in used)}
    if "algorithm" in out:  # algorithm=none reads only the model
        out["algorithm"] = {k: v for k, v in out["algorithm"].items() if k not in ALGORITHM_NON_DETERMINING}
    out["eval"] = {k: v for k, v in out["eval"].items() if k != "batch_size"}
    return out


def run_id_of(cfg, config_hash: str) -> str:
    a = axes_of(cfg)
    return f"{a['model']}-{a['dataset']}-{a['algorithm']}-{a['reward_model']}-{a['prompts']}-s{cfg.seed}-{config_hash[:8]}"


def identity(cfg) -> tuple[str, str]:
    """(config_hash, run_id): two configs with the same identity compute the same numbers."""
    config_hash = digest(determining_config(cfg), 16)
    return config_hash, run_id_of(cfg, config_hash)


def planned_stages(cfg) -> list[Stage]:
    """Every content-addressed stage the run needs, in order, computed without running or loading anything
    (the sweep planner deduplicates sweeps with these; `run` builds the same stages)."""
    root = Path(cfg.paths.stages)
    base_stage = base_model_stage(cfg.model, root)
    stages = [base_stage] if base_stage else []
    policy = ModelRef(str(base_stage.dir / "model"), key=base_stage.key) if base_stage else ModelRef(cfg.model.path, cfg.model.revision)
    if cfg.algorithm.name != "none":
        stages.append(policy_stage(cfg, policy))
        policy = ModelRef(str(stages[-1].dir / "model"), key=stages[-1].key)
    return stages + [benchmark_stage(b, policy_identity(policy), root) for b in cfg.eval.benchmarks.values()]


# ------------------------------------------------------------------------------------------------- stages
def load_training_data(cfg) -> TrainingData:
    """Load (and so validate) everything training reads, before any stage starts."""
    if cfg.algorithm.name == "dpo":
        train = data.load_preferences(cfg.dataset, mirror=cfg.paths.mirror)
        heldout = data.load_preferences(cfg.dataset, split=cfg.dataset.eval_split, mirror=cfg.paths.mirror) if cfg.dataset.eval_split else None
        return TrainingData(train, heldout)
    return TrainingData()


def policy_spec(cfg, base: ModelRef) -> dict:
    alg = {k: v for k, v in OmegaConf.to_container(cfg.algorithm, resolve=True).items() if k not in ALGORITHM_NON_DETERMINING}
    spec = {"base": base.key or {"path": base.path, "revision": base.revision}, "chat_template": cfg.model.chat_template,
            "algorithm": alg, "seed": cfg.seed}
    if "dataset" in axes_used(cfg):
        spec["dataset"] = data.identity(cfg.dataset)
    return spec


def policy_stage(cfg, base: ModelRef) -> Stage:
    return Stage("policy", policy_spec(cfg, base), Path(cfg.paths.stages))


def train_in_process(cfg, base: ModelRef, inputs: TrainingData, out_dir: Path, report_to: str, run_id: str) -> dict:
    """Train the policy in this process (one of several when launched by harness.sweep.processes)."""
    name = cfg.algorithm.name
    if name == "dpo":
        from harness.train import dpo

        return dpo.train(cfg.algorithm, base, cfg.model, inputs.train, inputs.heldout, out_dir, report_to, run_id, cfg.seed)
    raise NotImplementedError(f"algorithm={name} is not available yet")


def train_policy(cfg, base: ModelRef, inputs: TrainingData, tracker: Tracker, run_id: str) -> tuple[ModelRef, dict]:
    name = cfg.algorithm.name
    if name == "none":
        return base, {"reused": True, "path": base.path}
    stage = policy_stage(cfg, base)
    if cfg.launch.processes > 1:  # torchrun-style: accelerate starts the processes, this one waits and records
        from harness.sweep import processes

        work = lambda d: processes.train(cfg, base, d, run_id, tracker.run_id if tracker.active else None)  # noqa: E731
    else:
        work = lambda d: train_in_process(cfg, base, inputs, d, tracker.report_to, run_id)  # noqa: E731
    result, reused = stage.run(work, label=f"{name} policy {stage.key}")
    if reused and (stage.dir / "log_history.json").exists():
        tracker.log_history(json.loads((stage.dir / "log_history.json").read_text()))
    return ModelRef(str(stage.dir / "model"), key=stage.key), {**result, "reused": reused, "key": stage.key, "dir": str(stage.dir)}


def policy_identity(policy: ModelRef) -> dict:
    return {"stage": policy.key} if policy.key else {"path": policy.path, "revision": policy.revision}


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
    tracker.log_metrics({f"eval/{k}": v for k, v in scores.items()} | {f"category/{k}": v for k, v in categories.items()}
                        | {"average": result["average"]}
                        | {f"train/{k}": v for k, v in result["training"].items() if isinstance(v, (int, float))})
    tracker.log_dict(result["config"], "config.json")
    tracker.log_dict(result, "result.json")
    return result


def run(cfg: DictConfig) -> dict:
    check(cfg)
    config_hash, run_id = identity(cfg)
    common.STEPS_THIS_PROCESS["count"] = 0  # several runs may share one process (a local multirun)
    inputs = load_training_data(cfg)
    if cfg.dry_run:
        print(f"[harness] dry run {run_id}: axes {axes_of(cfg)}")
        return {"run_id": run_id, "config_hash": config_hash, "dry_run": True}
    tracker = Tracker(cfg.tracking)
    tags = axes_of(cfg) | {"config_hash": config_hash, "seed": cfg.seed, "run_id": run_id} | ({"sweep": cfg.sweep} if cfg.sweep else {})
    tracker.start(run_id, params=determining_config(cfg), tags={k: str(v) for k, v in tags.items()})
    try:
        base, base_info = base_model(cfg.model, cfg.paths.stages)
        policy, policy_info = train_policy(cfg, base, inputs, tracker, run_id)
        benchmarks = run_suite(cfg.eval, policy, policy_identity(policy), cfg.model, cfg.paths.stages)
        stages = {"model": base_info | {"path": base.path}, "policy": policy_info}
        result = record(cfg, run_id, config_hash, stages, benchmarks, tracker)
    except BaseException as exc:  # a requeued job (time limit, preemption) exits with SystemExit: KILLED, not FAILED
        tracker.end("KILLED" if isinstance(exc, (SystemExit, KeyboardInterrupt)) else "FAILED")
        raise
    tracker.end("FINISHED")
    print(summary_table(result))
    return result
