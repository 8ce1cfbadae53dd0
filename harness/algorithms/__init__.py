"""The algorithms a run can train (or wrap) its policy with, one module each; the pipeline asks this registry, never
an algorithm's name.

    python -m harness algorithm=dpo        # harness/algorithms/dpo.py, conf/algorithm/dpo.yaml
    python -m harness algorithm=ipo        # an algorithm beyond the paper: one module + one config

An algorithm is found by convention: `algorithm=<name>` composes `conf/algorithm/<name>.yaml`, whose `name` selects
the module `harness.algorithms.<name>`; an algorithm living outside this package names its module in the config
(`module: my_package.my_algorithm`). The module defines `ALGORITHM`, an instance of `Algorithm`, which says which axes
the algorithm reads, how it loads and checks its inputs, how it trains (or wraps the policy at evaluation time, as
best-of-N does) and what identifies the policy it produces. These modules import no ML library at import time: the
trainers they call (harness.train) are imported when a stage trains.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from omegaconf import OmegaConf

from harness.config.errors import ConfigError

# Keys of an algorithm entry that never change what it computes (logging, checkpoints, memory-only sizes, DPO's
# reference log-probs computed once rather than per step: equal within float tolerance; learning curves: the policy
# is saved and evaluated on the side every `eval_every` steps, its final weights equal without them,
# tests/test_curves.py; the vLLM engine's memory share and sleep, which change how many sequences it batches and when
# its memory is freed, not the sampler: vLLM's logits are not batch-invariant, so they move by rounding only).
NON_DETERMINING = {"logging_steps", "save_steps", "per_device_batch_size", "activation_checkpointing", "score_batch_size",
                   "precompute_ref_log_probs", "eval_every", "curve_suite", "vllm_gpu_memory_utilization", "vllm_sleep"}


@dataclass
class TrainingData:
    """What a run's training reads, loaded and checked before the first stage starts."""

    train: Any = None
    heldout: Any = None
    extra: dict = field(default_factory=dict)
    # The run's reward model (harness.train.reward.RewardModelPlan), when it uses one.
    reward_model: Any = None


class Algorithm:
    """The contract between one algorithm and the pipeline; every hook has the behaviour of "no training"."""

    name: ClassVar[str]
    # The axes of the grid whose entry changes what this algorithm computes (the others are left out of a run's
    # identity). "reward_model" is added by the pipeline when the run reads one (e.g. to evaluate it).
    axes: ClassVar[tuple[str, ...]] = ("model", "algorithm")
    # Whether the algorithm trains a policy stage (False: the SFT model is evaluated, possibly wrapped).
    trains: ClassVar[bool] = False

    def axes_read(self, alg) -> tuple[str, ...]:
        """The axes this entry of the algorithm reads (an option may change them, e.g. Table 2's switch)."""
        return self.axes

    def uses_reward_model(self, alg) -> bool:
        """Whether the algorithm reads a reward model (to train against or to pick with)."""
        return False

    def check(self, cfg) -> None:
        """Combinations of this algorithm's values (and other axes) that cannot run; raise ConfigError."""

    def load_inputs(self, cfg, reward_model) -> TrainingData:
        """Load (and so validate) everything training reads, before any stage starts."""
        return TrainingData(reward_model=reward_model)

    def fit_inputs(self, cfg, inputs: TrainingData, base) -> TrainingData:
        """Adjust the inputs to the base model (its tokenizer), once it exists; `extra["data_counts"]` is recorded."""
        return inputs

    def train(self, cfg, base, inputs: TrainingData, out_dir: Path, reward_model, report_to: str, run_id: str,
              log: Callable[[dict, int], None]) -> dict:
        """Train the policy into `out_dir / "model"` (in this process: one of several under launch.processes > 1);
        returns the training record (metrics, steps, batch plan)."""
        raise ConfigError(f"algorithm={self.name} trains no policy")

    def wrap_policy(self, cfg, reward_model) -> Callable | None:
        """A wrapper of the evaluated policy's lm-eval LM (best-of-N), or None to evaluate the policy as it is."""
        return None

    def policy_identity(self, cfg, reward_model) -> dict:
        """What, besides the policy's weights, determines what evaluation sees (best-of-N: its sampler and picker)."""
        return {}


def recipe(alg) -> dict:
    """The algorithm entry's values that determine what it computes."""
    return {k: v for k, v in OmegaConf.to_container(alg, resolve=True).items() if k not in NON_DETERMINING}


def get(alg) -> Algorithm:
    """The algorithm of an `algorithm` config entry (harness.algorithms.<name>, or the module the entry names)."""
    module_name = alg.get("module") or f"{__name__}.{alg.name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"algorithm.name={alg.name!r} has no module {module_name!r}: add harness/algorithms/"
                          f"{alg.name}.py defining ALGORITHM, or set algorithm.module=<importable module>") from None
    algorithm = getattr(module, "ALGORITHM", None)
    if not isinstance(algorithm, Algorithm):
        raise ConfigError(f"module {module_name!r} (algorithm={alg.name}) defines no ALGORITHM = <Algorithm instance>")
    return algorithm
