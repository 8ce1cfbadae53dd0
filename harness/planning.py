"""The stages a run needs and their keys, from its config alone: the pipeline runs these stages and the sweep planner
deduplicates sweeps with them (harness.sweep.plan), so both compute every key with the same functions. Imports no ML
library: planning the paper's 42 runs reads configs only (tests/test_compose_cache.py checks the imports).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from harness import algorithms, data
from harness.config.checks import REWARD_MODEL_RUNNERS, uses_reward_model
from harness.models import ModelRef, base_model_stage
from harness.records.identity import axes_used
from harness.records.stages import Stage
from harness.train import reward_plan


def planned_stages(cfg) -> list[Stage]:
    """Every content-addressed stage the run needs, in order, computed without running or loading anything
    (the sweep planner deduplicates sweeps with these; `run` builds the same stages)."""
    root = Path(cfg.paths.stages)
    base_stage = base_model_stage(cfg.model, root)
    stages = [base_stage] if base_stage else []
    base = policy = stage_ref(base_stage, cfg.model)
    rm = None
    if uses_reward_model(cfg):
        p = reward_plan.plan(cfg, getattr(cfg.algorithm, "table2", False), load=False)
        if p.trained_here:
            rm_base_stage = base_model_stage(p.model, root)
            rm_stage = Stage("reward_model", reward_plan.stage_spec(p, stage_ref(rm_base_stage, p.model)), root)
            stages += [s for s in (rm_base_stage, rm_stage) if s and s.key not in {x.key for x in stages}]
            rm = reward_plan.RewardModel(stage_ref(rm_stage, p.model), p.model.chat_template, {})
        else:
            rm = reward_plan.RewardModel(ModelRef(p.cfg.path, p.cfg.revision), p.cfg.chat_template, {})
    if algorithms.get(cfg.algorithm).trains:
        stages.append(policy_stage(cfg, base, rm))
        policy = stage_ref(stages[-1], cfg.model)
    benchmarks = cfg.eval.benchmarks.values()
    policy_id = policy_identity(policy, cfg, rm)
    stages += [benchmark_stage(b, policy_id, root) for b in benchmarks if not scores_reward_model(b)]
    return stages + [reward_benchmark_stage(b, rm, root) for b in benchmarks if scores_reward_model(b)]


def stage_ref(stage: Stage | None, model_cfg) -> ModelRef:
    """The model a stage made, or the configured one when there is no stage."""
    return ModelRef(str(stage.dir / "model"), key=stage.key) if stage else ModelRef(model_cfg.path, model_cfg.revision)


def policy_spec(cfg, base: ModelRef, rm=None) -> dict:
    spec = {"base": base.key or {"path": base.path, "revision": base.revision}, "chat_template": cfg.model.chat_template,
            "algorithm": algorithms.recipe(cfg.algorithm), "seed": cfg.seed}
    if "dataset" in axes_used(cfg):
        spec["dataset"] = data.identity(cfg.dataset)
    if "prompts" in axes_used(cfg):
        spec["prompts"] = data.identity(cfg.prompts)
    if rm is not None:
        spec["reward_model"] = rm.identity
    return spec


def policy_stage(cfg, base: ModelRef, rm=None) -> Stage:
    return Stage("policy", policy_spec(cfg, base, rm), Path(cfg.paths.stages))


def policy_identity(policy: ModelRef, cfg=None, rm=None) -> dict:
    """What evaluation sees: the policy's weights, what the algorithm wraps them in (best-of-N), and their precision
    when eval.load_in_8bit quantises them (so its benchmark stages and generation cache are its own)."""
    ident = {"stage": policy.key} if policy.key else {"path": policy.path, "revision": policy.revision}
    if cfg is None:
        return ident
    precision = {"load_in_8bit": True} if cfg.eval.load_in_8bit else {}
    return ident | algorithms.get(cfg.algorithm).policy_identity(cfg, rm) | precision


def scores_reward_model(bench) -> bool:
    """A benchmark of the reward model (RewardBench), not of the policy."""
    return bench.runner in REWARD_MODEL_RUNNERS


def benchmark_stage(bench, policy_id: dict, root: Path) -> Stage:
    """A policy benchmark's stage: keyed by the policy's identity and the whole benchmark config."""
    return Stage("eval", {"policy": policy_id, "benchmark": OmegaConf.to_container(bench, resolve=True)}, Path(root))


def reward_benchmark_stage(bench, reward_model, root) -> Stage:
    """A reward-model benchmark's stage: keyed by the reward model, not a policy."""
    spec = {"reward_model": reward_model.identity, "benchmark": OmegaConf.to_container(bench, resolve=True)}
    return Stage("eval", spec, Path(root))
