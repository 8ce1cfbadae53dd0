"""Combinations of axes that cannot work, caught when the run starts rather than hours into it. Above the config layer
(harness.config): the checks ask the algorithm registry, the trainers' batch plans and the benchmarks' sources."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from harness import algorithms
from harness.config.errors import ConfigError
from harness.config.groups import options
from harness.config.schema import CATEGORIES, PAPER_BENCHMARKS, REWARD_MODEL_CATEGORY, ROLLOUT_BACKENDS
from harness.train import sharding
from harness.records.stages import VERIFY_MODES

# Benchmark runners that evaluate the reward model itself (harness.eval.rewardbench), not the policy.
REWARD_MODEL_RUNNERS = ("rewardbench",)
log = logging.getLogger(__name__)


def uses_reward_model(cfg) -> bool:
    """A run reads a reward model to train against (PPO; GRPO unless on the GSM8k reward alone), to pick with
    (best-of-N), or to evaluate it (RewardBench)."""
    if algorithms.get(cfg.algorithm).uses_reward_model(cfg.algorithm):
        return True
    return any(b.runner in REWARD_MODEL_RUNNERS for b in cfg.eval.benchmarks.values())


def unknown_keys(node, prefix: str = "") -> list[str]:
    """Dotted keys of `node` that its schema does not declare: `+key=value` overrides add them without complaint
    (Hydra even suggests `+algorithm.bta=0.2` for a misspelt `algorithm.bta`), and they would change the run's
    identity while nothing reads them. Entries of free-form maps (benchmarks, judges, options, files) are not checked."""
    if not isinstance(node, DictConfig):
        return []
    schema = OmegaConf.get_type(node)
    known = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    found = []
    for key in node.keys():
        dotted = f"{prefix}{key}"
        if known is not None and key not in known:
            found.append(dotted)
        elif not OmegaConf.is_missing(node, key):
            found += unknown_keys(node._get_node(key), dotted + ".")
    return found


# Numbers of the config schema that must be positive where a node has them (0 would mean nothing: no step, no row, no
# sample); every other number must be >= 0 unless its negative values mean something (NEGATIVE_MEANS), and every
# number must be finite (check_values: the schema's fields, so a new field is checked without being listed here).
POSITIVE = ("learning_rate", "epochs", "effective_batch_size", "per_device_batch_size", "max_length", "logging_steps",
            "save_steps", "rollout_batch_size", "ppo_epochs", "max_new_tokens", "generation_batch_size",
            "num_generations", "n", "score_batch_size", "minibatch_size", "batch_size", "limit", "num_samples",
            "max_tokens", "timeout_s", "processes", "nodes", "tensor_parallel_size", "max_prompt_tokens", "scale",
            "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings",
            "sft_epochs", "sft_learning_rate", "sft_batch_size", "max_samples", "upstream_max_rows")
# Fields whose negative values mean something: max_steps -1 lets epochs decide (TRL's convention); a missing-EOS
# penalty is a (negative) score.
NEGATIVE_MEANS = ("max_steps", "missing_eos_penalty")
# Numbers of the schema that are fractions: at most 1.
FRACTIONS = ("max_bad_fraction", "max_empty_fraction", "warmup_ratio", "top_p")


def check_values(node, prefix: str = "") -> None:
    """Every number the config schema declares, wherever it is (recipes, data, benchmarks, judges, launch): finite,
    not negative unless that means something, positive where zero would select nothing, a fraction at most 1. Found
    before any stage: `algorithm.beta=-1`, `beta=nan` or `learning_rate=inf` trained to NaN or recorded, a benchmark
    `limit=0` failed only after training."""
    if not isinstance(node, DictConfig):
        return
    for key in node.keys():
        if OmegaConf.is_missing(node, key):
            continue
        value, dotted = node[key], f"{prefix}{key}"
        if isinstance(value, DictConfig):
            check_values(value, dotted + ".")
        elif isinstance(value, ListConfig):  # e.g. a mixture's components
            for i, item in enumerate(value):
                check_values(item, f"{dotted}.{i}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and OmegaConf.get_type(node) is not dict:
            if not math.isfinite(value):
                raise ConfigError(f"{dotted}={value} must be a finite number")
            if key in POSITIVE and value <= 0:
                raise ConfigError(f"{dotted}={value} must be {'>= 1' if isinstance(value, int) else '> 0'}")
            if value < 0 and key not in NEGATIVE_MEANS:
                raise ConfigError(f"{dotted}={value} must be >= 0")
            if key in FRACTIONS and value > 1:
                raise ConfigError(f"{dotted}={value} is a fraction: at most 1")


def check_paths(paths) -> None:
    """Where results go: an empty or root path would scatter stages, logs and the MLflow store over the file system's
    root (`paths.results=` wrote /stages and /mlflow.db)."""
    for key in ("home", "results", "stages"):
        value = str(paths[key] or "")
        if not value.strip() or Path(value).resolve() == Path("/"):
            raise ConfigError(f"paths.{key}={value!r} is {'empty' if not value.strip() else 'the root directory'}; set "
                              f"it to a directory of its own (default paths.{key}: "
                              f"{ {'home': 'the working directory', 'results': '<paths.home>/results', 'stages': '<paths.results>/stages'}[key]})")


def check_numbers(node, prefix: str, processes: int) -> None:
    from harness.train.batching import plan

    if "effective_batch_size" in node and "per_device_batch_size" in node:
        try:
            batch = plan(node.effective_batch_size, node.per_device_batch_size, processes)
        except ValueError as exc:
            raise ConfigError(f"{prefix}.{exc} (launch.processes={processes})") from None
        generations = node.get("num_generations")  # GRPO: each step's prompts come in whole groups
        if generations and batch.effective % generations:
            raise ConfigError(f"{prefix}.effective_batch_size={batch.effective} must be divisible by "
                              f"{prefix}.num_generations={generations} (each prompt's group is sampled in one step)")


_warned: set[str] = set()


def check(cfg) -> None:
    from harness.eval.variants import SUBSET_DRAWS, check_sources

    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not a key of the config schema (harness/config/schema.py), so nothing "
                          "would read it; check the spelling (`python -m harness --cfg job` prints every key)")
    algorithm, rm = algorithms.get(cfg.algorithm), cfg.reward_model.name
    check_paths(cfg.paths)
    check_values(cfg)
    check_numbers(cfg.algorithm, "algorithm", cfg.launch.processes)
    if uses_reward_model(cfg) and cfg.reward_model.base_model:  # trained here
        check_numbers(cfg.reward_model, "reward_model", cfg.launch.processes)
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"eval.batch_size={cfg.eval.batch_size} must be >= 1")
    algorithm.check(cfg)
    if uses_reward_model(cfg) and rm == "none" and not getattr(cfg.algorithm, "table2", False):
        valid = [o for o in options("reward_model") if o != "none"]
        if algorithm.uses_reward_model(cfg.algorithm):
            raise ConfigError(f"algorithm={algorithm.name} needs a reward model but reward_model=none; choose one of {valid}")
        raise ConfigError(f"eval={cfg.eval.suite} evaluates a reward model but reward_model=none; choose one of {valid}")
    if rm == "path" and not cfg.reward_model.path:
        raise ConfigError("reward_model=path needs reward_model.path=<directory or hub id of a sequence-classification "
                          "reward model>")
    for key, bench in cfg.eval.benchmarks.items():
        try:
            for warning in check_sources(bench):
                if warning not in _warned:  # once per process: a sweep plan checks every run's suite
                    _warned.add(warning)
                    log.warning(warning)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if bench.subset_draw not in SUBSET_DRAWS:
            raise ConfigError(f"eval.benchmarks.{key}.subset_draw={bench.subset_draw!r}; valid: {list(SUBSET_DRAWS)}")
        check_category(key, bench)
    if cfg.tracking.backend not in ("mlflow", "none"):
        raise ConfigError(f"tracking.backend={cfg.tracking.backend!r}; valid: ['mlflow', 'none']")
    sharding.check(algorithm.name, cfg.launch.sharding, cfg.launch.processes * cfg.launch.nodes)
    if cfg.verify_stages not in VERIFY_MODES:
        raise ConfigError(f"verify_stages={cfg.verify_stages!r}; valid: {list(VERIFY_MODES)}")
    if cfg.eval.backend not in ("hf", "vllm"):
        raise ConfigError(f"eval.backend={cfg.eval.backend!r}; valid: ['hf', 'vllm']")
    if cfg.eval.load_in_8bit and cfg.eval.backend != "hf":
        raise ConfigError(f"eval.load_in_8bit=true loads the policy through transformers and bitsandbytes, not "
                          f"eval.backend={cfg.eval.backend}; set eval.backend=hf (open-instruct's 8-bit runs did not "
                          "use vLLM either) or eval.load_in_8bit=false")
    if cfg.eval.load_in_8bit and cfg.eval.placement.device_map:
        raise ConfigError("eval.load_in_8bit=true places the policy on the GPUs itself (device_map auto, as "
                          "open-instruct); unset eval.placement.device_map")
    backend = cfg.algorithm.get("rollout_backend")
    if backend is not None and backend not in ROLLOUT_BACKENDS:
        raise ConfigError(f"algorithm.rollout_backend={backend!r}; valid: {list(ROLLOUT_BACKENDS)}")


def check_category(key: str, bench) -> None:
    """A benchmark joins one of the paper's categories only if it is one of the paper's benchmarks of it; any other
    names a category of its own (reported apart, out of the Average), so that adding one never moves the paper's."""
    category, own = bench.category, "a category of its own, e.g. category: <lowercase name>"
    if category in CATEGORIES:
        if key not in PAPER_BENCHMARKS[category]:
            raise ConfigError(f"benchmark {key!r} has category {category!r}, one of the paper's six, whose benchmarks are "
                              f"{list(PAPER_BENCHMARKS[category])} (protocol): joining it would change the paper's "
                              f"{category} score and the Average; give {key!r} {own} (reported apart, kept out of "
                              "the Average)")
    elif (category == REWARD_MODEL_CATEGORY) != (bench.runner in REWARD_MODEL_RUNNERS):
        raise ConfigError(f"benchmark {key!r}: category {REWARD_MODEL_CATEGORY!r} is for the benchmarks that score the "
                          f"reward model (runners {list(REWARD_MODEL_RUNNERS)}), and they have no other; runner "
                          f"{bench.runner!r}, category {category!r}")
    elif not re.fullmatch(r"[a-z][a-z0-9_]*", category) or category == "average":
        raise ConfigError(f"benchmark {key!r}: category {category!r} is neither one of the paper's {list(CATEGORIES)} "
                          f"nor a lowercase name of its own (letters, digits, _; not 'average')")


def check_judge_keys(stages) -> None:
    """Every API judge of a benchmark still to run has its key in the environment, checked before any stage starts
    (a complete benchmark's verdicts are cached and need no key)."""
    for stage in stages:
        if stage.kind != "eval" or stage.complete:
            continue
        bench = stage.spec["benchmark"]
        for role, judge in (bench.get("judges") or {}).items():
            env = judge.get("api_key_env")
            if judge["kind"] == "openai" and env and not os.environ.get(env):
                raise ConfigError(f"benchmark {bench['name']!r}: judge {role!r} ({judge['model']} at {judge['base_url']}) "
                                  f"reads its API key from the environment variable {env}, which is not set; export "
                                  f"{env}=<key>, or use a local judge (eval.benchmarks.<key>.judges.{role}.kind=hf)")


def check_rollout_engine(cfg, stages) -> None:
    """algorithm.rollout_backend=vllm samples with vLLM, which needs the vllm extra and a CUDA GPU where the policy is
    trained; checked before any stage starts, and only when the policy stage is still to be computed."""
    if cfg.algorithm.get("rollout_backend") != "vllm" or all(s.complete for s in stages if s.kind == "policy"):
        return
    import importlib.util

    import torch

    missing = [what for what, absent in (("vLLM", importlib.util.find_spec("vllm") is None),
                                         ("a CUDA GPU", not torch.cuda.is_available())) if absent]
    if missing:
        raise ConfigError(f"algorithm.rollout_backend=vllm samples rollouts with vLLM, which needs a CUDA GPU and the "
                          f'vllm extra (pip install -e ".[vllm]"); this machine has no {" and no ".join(missing)}: run '
                          "on a GPU machine with the extra, or set algorithm.rollout_backend=hf")
