"""Combinations of axes that cannot work, caught when the run starts rather than hours into it."""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError
from harness.schema import CATEGORIES
from harness.train import sharding

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
NEEDS_REWARD_MODEL = ("ppo", "grpo", "best_of_n")
GRPO_REWARDS = ("reward_model", "gsm8k", "both")
# Benchmark runners that evaluate the reward model itself (harness.rewardbench), not the policy.
REWARD_MODEL_RUNNERS = ("rewardbench",)


def options(group: str) -> list[str]:
    """Entries of a config group (the YAML files under conf/<group>/)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def entry(group: str, name: str):
    """One entry of a config group, composed and typed as `<group>=<name>` would be (a reward model names its base
    model and data by entry)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if name not in options(group):
        raise ConfigError(f"{group}={name!r} is not an entry of conf/{group}/; valid: {options(group)}")
    if GlobalHydra.instance().is_initialized():  # inside `python -m harness`
        return compose("config", overrides=[f"{group}={name}"])[group]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"{group}={name}"])[group]


def uses_reward_model(cfg) -> bool:
    """A run reads a reward model to train (PPO; GRPO unless on the GSM8k reward alone), to pick (best-of-N), or to
    evaluate it (RewardBench)."""
    alg = cfg.algorithm
    if alg.name in NEEDS_REWARD_MODEL and not (alg.name == "grpo" and alg.reward == "gsm8k"):
        return True
    return any(b.runner in REWARD_MODEL_RUNNERS for b in cfg.eval.benchmarks.values())


def check(cfg) -> None:
    alg, rm = cfg.algorithm.name, cfg.reward_model.name
    if alg == "grpo" and cfg.algorithm.reward not in GRPO_REWARDS:
        raise ConfigError(f"algorithm.reward={cfg.algorithm.reward!r}; valid: {list(GRPO_REWARDS)}")
    if uses_reward_model(cfg) and rm == "none" and not getattr(cfg.algorithm, "table2", False):
        valid = [o for o in options("reward_model") if o != "none"]
        if alg in NEEDS_REWARD_MODEL:
            raise ConfigError(f"algorithm={alg} needs a reward model but reward_model=none; choose one of {valid}")
        raise ConfigError(f"eval={cfg.eval.suite} evaluates a reward model but reward_model=none; choose one of {valid}")
    if alg == "dpo" and rm != "none":
        raise ConfigError(
            f"algorithm=dpo learns from preference pairs directly and uses no reward model, but reward_model={rm}; "
            f"set reward_model=none, or use algorithm=ppo or algorithm=grpo with a reward model"
        )
    if rm == "path" and not cfg.reward_model.path:
        raise ConfigError("reward_model=path needs reward_model.path=<directory or hub id of a sequence-classification "
                          "reward model>")
    if alg == "ppo" and cfg.algorithm.minibatch_size != cfg.algorithm.effective_batch_size:
        raise ConfigError(f"algorithm.minibatch_size={cfg.algorithm.minibatch_size} differs from "
                          f"algorithm.effective_batch_size={cfg.algorithm.effective_batch_size}: they are the same number "
                          "(examples per optimiser step); set effective_batch_size only")
    for key, bench in cfg.eval.benchmarks.items():
        if bench.category not in CATEGORIES and not (bench.runner in REWARD_MODEL_RUNNERS and bench.category == "reward_model"):
            raise ConfigError(f"benchmark {key!r} has category {bench.category!r}; valid: {list(CATEGORIES)} "
                              f"(or reward_model for runners {list(REWARD_MODEL_RUNNERS)})")
    if cfg.tracking.backend not in ("mlflow", "none"):
        raise ConfigError(f"tracking.backend={cfg.tracking.backend!r}; valid: ['mlflow', 'none']")
    sharding.check(alg, cfg.launch.sharding, cfg.launch.processes * cfg.launch.nodes)
    if cfg.eval.backend not in ("hf", "vllm"):
        raise ConfigError(f"eval.backend={cfg.eval.backend!r}; valid: ['hf', 'vllm']")
