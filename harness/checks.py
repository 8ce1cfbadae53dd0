"""Combinations of axes that cannot work, caught when the run starts rather than hours into it."""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError
from harness.schema import CATEGORIES

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
NEEDS_REWARD_MODEL = ("ppo", "grpo")


def options(group: str) -> list[str]:
    """Entries of a config group (the YAML files under conf/<group>/)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check(cfg) -> None:
    alg, rm = cfg.algorithm.name, cfg.reward_model.name
    if alg in NEEDS_REWARD_MODEL and rm == "none" and not getattr(cfg.algorithm, "table2", False):
        if not (alg == "grpo" and cfg.algorithm.reward == "gsm8k"):
            valid = [o for o in options("reward_model") if o != "none"]
            raise ConfigError(f"algorithm={alg} needs a reward model but reward_model=none; choose one of {valid}")
    if alg == "dpo" and rm != "none":
        raise ConfigError(
            f"algorithm=dpo learns from preference pairs directly and uses no reward model, but reward_model={rm}; "
            f"set reward_model=none, or use algorithm=ppo or algorithm=grpo with a reward model"
        )
    for key, bench in cfg.eval.benchmarks.items():
        if bench.category not in CATEGORIES:
            raise ConfigError(f"benchmark {key!r} has category {bench.category!r}; valid: {list(CATEGORIES)}")
    if cfg.tracking.backend not in ("mlflow", "none"):
        raise ConfigError(f"tracking.backend={cfg.tracking.backend!r}; valid: ['mlflow', 'none']")
    if cfg.eval.backend not in ("hf", "vllm"):
        raise ConfigError(f"eval.backend={cfg.eval.backend!r}; valid: ['hf', 'vllm']")
