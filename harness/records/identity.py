"""A run's identity, computed from its composed config alone: which axes it reads, the configuration that determines
its numbers, its config hash and run id. Import-light (omegaconf, harness.algorithms and harness.train.reward_plan, which
import no ML library), so a finished run can be recognised before torch loads (harness.records.fastpath).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from harness import algorithms
from harness.config.checks import uses_reward_model
from harness.records.stages import digest
from harness.train import reward_plan

# Config keys that never change what a run computes (where things go, how they are logged, how big a micro-batch is;
# `scale` only selects entries, whose values are in the config).
NON_DETERMINING = {"paths", "tracking", "dry_run", "sweep", "launch", "verbose", "scale", "verify_stages"}
AXES = ("model", "dataset", "algorithm", "reward_model", "prompts")


def axes_used(cfg) -> tuple[str, ...]:
    """The axes whose entry changes what the run computes: the algorithm's, plus the reward model when the run reads
    one (e.g. to evaluate it) and minus it when it does not (e.g. GRPO on the verifiable GSM8k reward alone)."""
    used = algorithms.get(cfg.algorithm).axes_read(cfg.algorithm)
    if "prompts" in used and "dataset" not in used and cfg.prompts.source == "from_dataset":
        used = (*used, "dataset")  # the prompts are the dataset's (harness.data.prompts)
    if not uses_reward_model(cfg):
        return tuple(a for a in used if a != "reward_model")
    return used if "reward_model" in used else (*used, "reward_model")


def axes_of(cfg) -> dict[str, str]:
    """The run's point in the grid; axes the algorithm does not read are "none"."""
    used = axes_used(cfg)
    return {axis: (cfg[axis].name if axis in used else "none") for axis in AXES} | {"eval_suite": cfg.eval.suite}


def determining_config(cfg) -> dict:
    """Exactly the configuration that determines a run's numbers: its identity and config hash."""
    full = OmegaConf.to_container(cfg, resolve=True)
    used = axes_used(cfg)
    out = {k: v for k, v in full.items() if k not in NON_DETERMINING and (k not in AXES or k in used)}
    out["algorithm"] = algorithms.recipe(cfg.algorithm)
    out["eval"] = {k: v for k, v in out["eval"].items() if k not in ("batch_size", "recompute")}
    table2 = cfg.algorithm.get("table2", False)
    # A reward model naming neither weights nor data is refused by the run's checks, with the message that says why
    # (harness.config.checks); the identity of such a config is never recorded.
    if "reward_model" in used and (cfg.reward_model.path is not None or cfg.reward_model.dataset or table2):
        rm = reward_plan.plan(cfg, table2, load=False)
        if rm.trained_here:  # its base model and data are entries the config names: what they hold, not their names
            out["reward_model_inputs"] = {"model": OmegaConf.to_container(rm.model, resolve=True),
                                          "dataset": OmegaConf.to_container(rm.dataset, resolve=True)}
    return out


def run_id_of(cfg, config_hash: str) -> str:
    a = axes_of(cfg)
    return f"{a['model']}-{a['dataset']}-{a['algorithm']}-{a['reward_model']}-{a['prompts']}-s{cfg.seed}-{config_hash[:8]}"


def identity(cfg) -> tuple[str, str]:
    """(config_hash, run_id): two configs with the same identity compute the same numbers."""
    config_hash = digest(determining_config(cfg), 16)
    return config_hash, run_id_of(cfg, config_hash)


def run_log_path(cfg) -> Path:
    """The run's log file, beside its result.json (harness.console)."""
    return Path(cfg.paths.results) / "runs" / identity(cfg)[1] / "run.log"
