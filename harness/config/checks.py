"""Combinations of axes that cannot work, caught when the run starts rather than hours into it."""

from __future__ import annotations

import logging

from harness import algorithms
from harness.config.errors import ConfigError
from harness.config.groups import options
from harness.config.schema import CATEGORIES
from harness.train import sharding

# Benchmark runners that evaluate the reward model itself (harness.eval.rewardbench), not the policy.
REWARD_MODEL_RUNNERS = ("rewardbench",)
log = logging.getLogger(__name__)


def uses_reward_model(cfg) -> bool:
    """A run reads a reward model to train against (PPO; GRPO unless on the GSM8k reward alone), to pick with
    (best-of-N), or to evaluate it (RewardBench)."""
    if algorithms.get(cfg.algorithm).uses_reward_model(cfg.algorithm):
        return True
    return any(b.runner in REWARD_MODEL_RUNNERS for b in cfg.eval.benchmarks.values())


def check(cfg) -> None:
    from harness.eval.sources import check_sources

    algorithm, rm = algorithms.get(cfg.algorithm), cfg.reward_model.name
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
                log.warning(warning)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if bench.category not in CATEGORIES and not (bench.runner in REWARD_MODEL_RUNNERS and bench.category == "reward_model"):
            raise ConfigError(f"benchmark {key!r} has category {bench.category!r}; valid: {list(CATEGORIES)} "
                              f"(or reward_model for runners {list(REWARD_MODEL_RUNNERS)})")
    if cfg.tracking.backend not in ("mlflow", "none"):
        raise ConfigError(f"tracking.backend={cfg.tracking.backend!r}; valid: ['mlflow', 'none']")
    sharding.check(algorithm.name, cfg.launch.sharding, cfg.launch.processes * cfg.launch.nodes)
    if cfg.eval.backend not in ("hf", "vllm"):
        raise ConfigError(f"eval.backend={cfg.eval.backend!r}; valid: ['hf', 'vllm']")
