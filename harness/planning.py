"""The stages a run needs and their keys, from its config alone: the pipeline runs these stages and the sweep planner
deduplicates sweeps with them (harness.sweep.plan), so both compute every key with the same functions. Imports no ML
library: planning the paper's 42 runs reads configs only (tests/test_compose_cache.py checks the imports).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf, open_dict

from harness import algorithms, data
from harness.chat import ENCODING
from harness.config.checks import REWARD_MODEL_RUNNERS, uses_reward_model
from harness import models
from harness.models import ModelRef, base_model_stage
from harness.records.identity import axes_used
from harness.records.stages import Stage
from harness.train import reward_plan

# EvalConfig fields that change no benchmark's number: the suite's name; how many prompts one forward pass holds (the
# same requests, padded: the run identity says the same, records/identity.py); rescoring saved samples in place; which
# devices hold a big policy's layers (each layer runs the same kernels wherever it is placed). The rest (the backend,
# vLLM's tensor parallelism, any field added later) keys every policy benchmark; `benchmarks` are keyed one by one.
EVAL_NON_DETERMINING = ("suite", "batch_size", "recompute", "placement")
# EvalConfig fields that key only the sampled benchmarks (benchmark_stage; greedy ones change no number with them).
EVAL_SAMPLING = ("seed",)


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
    stages += [benchmark_stage(as_evaluated(b, cfg.model), policy_id, root, cfg.eval.seed) for b in benchmarks
               if not scores_reward_model(b)]
    return stages + [reward_benchmark_stage(b, rm, root, cfg.model.dtype) for b in benchmarks if scores_reward_model(b)]


def stage_ref(stage: Stage | None, model_cfg) -> ModelRef:
    """The model a stage made, or the configured one when there is no stage."""
    return ModelRef(str(stage.dir / "model"), key=stage.key) if stage else ModelRef(model_cfg.path, model_cfg.revision)


def policy_spec(cfg, base: ModelRef, rm=None) -> dict:
    spec = {"base": base.key or {"path": base.path, "revision": base.revision}, "model": models.identity(cfg.model),
            "algorithm": algorithms.recipe(cfg.algorithm), "seed": cfg.seed, "encoding": ENCODING}
    if "dataset" in axes_used(cfg):
        spec["dataset"] = data.identity(cfg.dataset)
    if "prompts" in axes_used(cfg):
        spec["prompts"] = data.identity(cfg.prompts)
    if rm is not None:
        spec["reward_model"] = rm.identity
    return spec


def policy_stage(cfg, base: ModelRef, rm=None) -> Stage:
    return Stage("policy", policy_spec(cfg, base, rm), Path(cfg.paths.stages))


def checkpoint_stage(policy_key: str, step: int, root) -> Stage:
    """The policy saved at optimiser step `step` while the policy stage `policy_key` trained: a point of its learning
    curve (algorithm.eval_every), evaluated like any policy."""
    return Stage("checkpoint", {"policy": policy_key, "step": int(step)}, Path(root))


def policy_identity(policy: ModelRef, cfg=None, rm=None) -> dict:
    """What evaluation sees as the policy: its weights, how they are run (chat format, dtype, backend, 8-bit weights)
    and the algorithm's wrapper (best-of-N); keys its benchmarks and its generation cache."""
    ident = {"stage": policy.key} if policy.key else {"path": policy.path, "revision": policy.revision}
    if cfg is None:
        return ident
    regime = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
              for k, v in cfg.eval.items() if k not in (*EVAL_NON_DETERMINING, *EVAL_SAMPLING, "benchmarks")}
    return ident | {"model": models.identity(cfg.model, evaluation=True), "eval": regime, "encoding": ENCODING} | \
        algorithms.get(cfg.algorithm).policy_identity(cfg, rm)


def scores_reward_model(bench) -> bool:
    """A benchmark of the reward model (RewardBench), not of the policy."""
    return bench.runner in REWARD_MODEL_RUNNERS


def eval_model(model_cfg):
    """The model config evaluation renders prompts with (`eval_chat_template` over `chat_template`), and whether
    that is open-instruct's plain format for untuned models."""
    template = model_cfg.get("eval_chat_template") or model_cfg.chat_template
    if template == model_cfg.chat_template:
        return model_cfg, template == "plain"
    return OmegaConf.merge(model_cfg, {"chat_template": template}), template == "plain"


def as_evaluated(bench, model_cfg):
    """The benchmark as the suite runs it for this model: with its `options.plain` merged in (keys it does not have
    yet included) when the model is evaluated in the plain format."""
    if not (eval_model(model_cfg)[1] and bench.options.get("plain")):
        return bench
    out = OmegaConf.merge(bench, {})
    with open_dict(out):
        out.merge_with(bench.options.plain)
    return out


def sampled(bench) -> bool:
    """The benchmark samples its generations (HumanEval+, MBPP+ at temperature 0.8): the sampling seed moves it."""
    return bench.generation.temperature > 0


def sampling_seed(bench, seed: int | None) -> int | None:
    """The evaluation seed (eval.seed) where it changes a benchmark's numbers: sampled benchmarks only."""
    return seed if seed is not None and sampled(bench) else None


def benchmark_stage(bench, policy_id: dict, root: Path, seed: int | None = None) -> Stage:
    """A policy benchmark's stage: keyed by the policy's identity and the whole benchmark config, and the evaluation
    seed when it samples with one (unseeded keys are as before eval.seed existed)."""
    spec = {"policy": policy_id, "benchmark": OmegaConf.to_container(bench, resolve=True)}
    seed = sampling_seed(bench, seed)
    return Stage("eval", spec | ({"seed": seed} if seed is not None else {}), Path(root))


def reward_benchmark_stage(bench, reward_model, root, dtype: str) -> Stage:
    """A reward-model benchmark's stage: keyed by the reward model (scored in the run's model.dtype), not a policy."""
    spec = {"reward_model": reward_model.identity, "dtype": dtype, "benchmark": OmegaConf.to_container(bench, resolve=True)}
    return Stage("eval", spec, Path(root))
