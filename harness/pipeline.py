"""One run, stage by stage: base model -> (reward model) -> policy -> evaluation -> record.

Every stage is content-addressed (harness.records.stages): rerunning a command reuses what is complete and trains nothing.
Inputs are loaded and checked before the first stage, so a bad dataset fails in seconds, not after training.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness import algorithms, console
from harness.algorithms import TrainingData
from harness.chat import TEMPLATES
from harness.checks import check, check_judge_keys, check_rollout_engine, uses_reward_model
from harness.config.errors import ConfigError
from harness.eval import rewardbench
from harness.eval.categories import average, beyond_paper, category_scores
from harness.eval.generation import make_lm
from harness.eval.items import run_items
from harness.eval.suite import run_suite
from harness.models import ModelRef, base_model, check_8bit_support, check_models, use_mirror
from harness.records.results import (git_commit, index_row, provenance_versions, summary_table, upsert_index,
                                     write_items, write_result)
from harness.records import stages as stage_records
from harness.records.identity import AXES, NON_DETERMINING, axes_of, axes_used, determining_config, identity, run_id_of  # noqa: F401
from harness.records.stages import digest
from harness.records.tracking import Tracker
from harness.planning import checkpoint_stage, hub_models, planned_stages, policy_identity, policy_stage
from harness.report import views
from harness.report.grid import table_tags
from harness.train import common, processes, reward

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


def obtain_reward_model(cfg, inputs: TrainingData, tracker: Tracker, run_id: str):
    """The run's reward model, trained (once) on the job's processes like the policy (harness.train.processes)."""
    if not inputs.reward_model:
        return None
    launch = None
    if processes.several(cfg.launch):
        launch = lambda base, d, name, mlflow_run_id: processes.train(  # noqa: E731
            cfg, d, processes.reward_model_job(base, name), mlflow_run_id)
    return reward.obtain(inputs.reward_model, cfg.paths.stages, tracker, run_id, launch)


def train_policy(cfg, base: ModelRef, inputs: TrainingData, tracker: Tracker, run_id: str, rm=None) -> tuple[ModelRef, dict]:
    if not algorithms.get(cfg.algorithm).trains:  # the SFT model is evaluated (best-of-N wraps it at evaluation)
        return base, {"reused": True, "path": base.path}
    stage = policy_stage(cfg, base, rm)
    if processes.several(cfg.launch):  # torchrun-style: accelerate starts the processes, this one waits and records
        job = processes.policy_job(base, rm, run_id)
        work = lambda d: processes.train(cfg, d, job, tracker.run_id if tracker.active else None)  # noqa: E731
    else:
        work = lambda d: train_in_process(cfg, base, inputs, d, rm, tracker.report_to, run_id, tracker.log_metrics)  # noqa: E731
    result, reused = stage.run(lambda d: keep_checkpoints(work(d), d, stage.key, cfg.paths.stages),
                               label=f"{cfg.algorithm.name} policy {stage.key}")
    if reused and (stage.dir / "log_history.json").exists():
        tracker.log_history(json.loads((stage.dir / "log_history.json").read_text()))
    return ModelRef(str(stage.dir / "model"), key=stage.key), {**result, "reused": reused, "key": stage.key, "dir": str(stage.dir)}


def keep_checkpoints(result: dict, policy_dir: Path, policy_key: str, root) -> dict:
    """Move the models saved for the learning curve (harness.train.common.SaveEvery) out of the policy stage into
    checkpoint stages of their own, before the policy stage is marked complete."""
    saved = Path(policy_dir) / common.CURVE_DIR
    for step_dir in sorted(saved.glob("step-*"), key=lambda p: int(p.name.removeprefix("step-"))):
        step = int(step_dir.name.removeprefix("step-"))
        checkpoint_stage(policy_key, step, root).run(
            lambda d, src=step_dir, n=step: (shutil.move(str(src), str(d / "model")), {"step": n})[1],
            label=f"checkpoint at step {step} of policy {policy_key}")
    shutil.rmtree(saved, ignore_errors=True)
    return result


def curve_suite(cfg):
    """The suite a learning curve's points are scored on: conf/eval/<algorithm.curve_suite> at the run's scale."""
    from harness.config.compose import compose

    suite = compose([f"eval={cfg.algorithm.curve_suite}", f"scale={cfg.scale}"]).eval
    for key in cfg.eval:  # evaluated as the run's own suite is (backend, devices, seed): its regime keys the stages
        if key not in ("suite", "benchmarks", "batch_size"):
            suite[key] = cfg.eval[key]
    return suite


def learning_curve(cfg, policy: ModelRef, policy_info: dict, rm, tracker: Tracker) -> dict | None:
    """Step -> scores on the curve suite of the checkpoints every `algorithm.eval_every` steps and of the final policy,
    each logged to MLflow as `curve/<metric>` at its step; None without eval_every."""
    every, final = cfg.algorithm.get("eval_every", 0), policy_info.get("global_step")
    if not every or not policy.key or not final:
        return None
    points = [(step, checkpoint_stage(policy.key, step, cfg.paths.stages)) for step in range(every, final, every)]
    missing = [step for step, stage in points if not stage.complete]
    if missing:
        console.say(f"[harness] WARNING: policy stage {policy_info.get('dir')} was trained without the checkpoints "
                    f"of algorithm.eval_every={every} (steps {missing}): the curve has the others only; delete the "
                    "stage and run again to train it with them")
    suite, curve = curve_suite(cfg), {}
    for step, stage in [p for p in points if p[0] not in missing] + [(final, None)]:
        ref = ModelRef(str(stage.dir / "model"), key=stage.key) if stage else policy
        out = run_suite(suite, ref, policy_identity(ref, cfg, rm), cfg.model, cfg.paths.stages, cfg.paths.mirror)
        scores = {k: b["score"] for k, b in out.items() if "error" not in b}
        categories = category_scores(scores, {k: b["category"] for k, b in out.items()})
        curve[step] = {f"eval/{k}": v for k, v in scores.items()} | {
            f"category/{c}": v for c, v in categories.items() if v is not None}
        tracker.log_metrics({f"curve/{k}": v for k, v in curve[step].items()}, step=step)
    return curve


def evaluate(cfg, policy: ModelRef, rm) -> dict:
    """The suite's policy benchmarks (through the algorithm's wrapper, e.g. best-of-N), then its reward-model
    benchmarks."""
    policy_eval, rm_benchmarks = rewardbench.split_suite(cfg.eval)
    lm_factory = None
    wrap = algorithms.get(cfg.algorithm).wrap_policy(cfg, rm)
    if wrap is not None:  # best-of-N samples its candidates with eval.backend (vLLM: tensor parallel as configured)
        lm_factory = lambda: wrap(make_lm(cfg.eval.backend, policy, cfg.model, cfg.eval.batch_size,  # noqa: E731
                                          cfg.eval.tensor_parallel_size, cfg.eval.placement, seed=cfg.eval.get("seed"),
                                          load_in_8bit=cfg.eval.load_in_8bit))
    # A wrapper keeps state between its calls (best-of-N: the chats behind rendered prompts), which answers from the
    # generation cache would bypass: its generations are not shared.
    out = run_suite(policy_eval, policy, policy_identity(policy, cfg, rm), cfg.model, cfg.paths.stages,
                    cfg.paths.mirror, lm_factory=lm_factory, share_generations=wrap is None)
    if rm_benchmarks:
        out |= rewardbench.evaluate(rm_benchmarks, rm, cfg.paths.stages, cfg.eval.batch_size, cfg.paths.mirror,
                                    cfg.model.dtype)
    return out


# ------------------------------------------------------------------------------------------------- record
def record(cfg, run_id: str, config_hash: str, stages: dict, benchmarks: dict, tracker: Tracker,
           curve: dict | None = None) -> dict:
    scores = {k: b.get("score") for k, b in benchmarks.items()}
    category_of = {k: b["category"] for k, b in benchmarks.items()}
    categories = category_scores(scores, category_of)
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
        # benchmarks beyond the paper's, under categories of their own: reported apart, never in the Average
        "categories_beyond_paper": beyond_paper(scores, category_of),
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
    if curve:
        result["curve"] = {str(step): scores for step, scores in curve.items()}
    result["result_path"] = str(Path(cfg.paths.results) / "runs" / run_id / "result.json")
    write_result(Path(cfg.paths.results), result)
    items = run_items(benchmarks)  # what intervals resample (harness.report.bootstrap)
    write_items(Path(cfg.paths.results), run_id, items)
    upsert_index(Path(cfg.paths.results), index_row(result))
    tracker.log_result(result, items)
    return result


def tracking_tags(axes: dict, config_hash: str, seed: int, run_id: str, sweep: str | None = None) -> dict[str, str]:
    """The tags a run's MLflow run starts with: its axes, its identity and the tables it fills (reports filter on them)."""
    tags = axes | {"config_hash": config_hash, "seed": seed, "run_id": run_id} | ({"sweep": sweep} if sweep else {})
    return {k: str(v) for k, v in (tags | table_tags(axes)).items()}


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


def dry_run(cfg, run_id: str, config_hash: str) -> dict:
    """The stages the run would compute or reuse, with their planned GPU-hours and memory per GPU (the sweep
    planner's cost and memory models, on the Slurm launcher's resource profiles)."""
    from harness.sweep import plan

    stages = planned_stages(cfg)
    report = plan.report([plan.PlannedRun([], cfg, run_id, config_hash, stages, [0])], 1, name=run_id,
                         profiles=plan.slurm_profiles())
    what = {s.key: (s.spec.get("benchmark") or {}).get("name") or s.kind for s in stages}
    for row in report["stage_rows"]:
        row["what"] = what[row["key"]]
    console.say(f"[harness] dry run {run_id}: every check a run makes passed; axes {axes_of(cfg)}")
    console.say(plan.render_stages(report))
    rows = report["stage_rows"]
    return {"run_id": run_id, "config_hash": config_hash, "dry_run": True, "stages": rows,
            "gpu_hours_remaining": sum(r["gpu_hours"] for r in rows if not r["complete"])}


def run(cfg: DictConfig) -> dict:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("a run is started once, not by torchrun / accelerate launch: set launch.processes=N and the "
                          "run starts its N training processes itself")
    check(cfg)
    if cfg.eval.load_in_8bit and not cfg.eval.recompute:  # a recompute loads no model; a dry run checks as a run does
        check_8bit_support()
    writable(cfg.paths)
    stage_records.VERIFY["mode"] = cfg.verify_stages
    stages = planned_stages(cfg)
    use_mirror(cfg.paths.mirror)  # hub models are read from the mirror's copies (harness.models)
    check_models(hub_models(cfg, stages), cfg.paths.mirror)
    config_hash, run_id = identity(cfg)
    common.STEPS_THIS_PROCESS["count"] = 0  # several runs may share one process (a local multirun)
    if not cfg.eval.recompute:
        check_judge_keys(stages)
        check_rollout_engine(cfg, stages)
    inputs = load_training_data(cfg)
    if cfg.dry_run:  # every check above passed, as for a real run: what it would do, and at what cost
        return dry_run(cfg, run_id, config_hash)
    tracker = Tracker(cfg.tracking, experiment_tags=views.experiment_tags())
    tracker.start(run_id, params=determining_config(cfg), tags=tracking_tags(axes_of(cfg), config_hash, cfg.seed, run_id, cfg.sweep),
                  sweep=cfg.sweep, lock_dir=cfg.paths.results)
    try:
        base, base_info = base_model(cfg.model, cfg.paths.stages)
        inputs = fit_training_data(cfg, inputs, base)
        rm = obtain_reward_model(cfg, inputs, tracker, run_id)
        policy, policy_info = train_policy(cfg, base, inputs, tracker, run_id, rm)
        policy_info |= inputs.extra.get("data_counts", {})
        benchmarks = evaluate(cfg, policy, rm)
        curve = learning_curve(cfg, policy, policy_info, rm, tracker)
        stages = {"model": base_info | {"path": base.path}, "policy": policy_info} | ({"reward_model": rm.info} if rm else {})
        result = record(cfg, run_id, config_hash, stages, benchmarks, tracker, curve)
    except BaseException as exc:  # a requeued job (time limit, preemption) exits with SystemExit: KILLED, not FAILED
        tracker.end("KILLED" if isinstance(exc, (SystemExit, KeyboardInterrupt)) else "FAILED")
        raise
    tracker.end("FINISHED")
    tracker.settle(Path(result["result_path"]).parent)  # a run that could not be logged is logged by the next invocation
    console.say(summary_table(result))
    return result
