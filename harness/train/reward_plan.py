"""Which reward model a run uses, and what its stage key is computed from: configs only, no ML library, so the
sweep planner (harness.planning) names reward-model stages without importing torch. Training and scoring are
harness.train.reward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from harness import data, models
from harness.chat import ENCODING
from harness.config.errors import ConfigError
from harness.models import ModelRef

if TYPE_CHECKING:
    from datasets import Dataset

# Fields of RewardModelConfig that change no number: names, a field nothing reads (module), memory (micro-batch size,
# activation checkpointing: the effective batch is kept, harness.train.batching), logging, checkpoints, the planner's
# size.
NON_DETERMINING = ("name", "module", "label", "per_device_batch_size", "activation_checkpointing", "logging_steps",
                   "save_steps", "params_b")
# Fields that name an existing reward model (its identity, RewardModel.identity); a trained one never reads them (it
# reads its base model's chat template).
EXISTING = ("path", "revision", "chat_template")
# Fields that name a trained one's base model and data: keyed by what they resolve to (stage_spec's base, model, data).
INPUTS = ("base_model", "dataset")


@dataclass
class RewardModelPlan:
    """The reward model a run uses: an existing one (`path`), or one to train from `model` on `dataset`."""

    cfg: Any
    model: Any = None
    dataset: Any = None
    train: Dataset | None = None
    heldout: Dataset | None = None

    @property
    def trained_here(self) -> bool:
        return self.cfg.path is None


def plan(cfg, table2: bool = False, load: bool = True) -> RewardModelPlan:
    """Resolve the run's reward model; its training data is loaded (and so validated) now, before any stage starts
    (`load=False`: configs only)."""
    from harness.config.groups import entry

    rm = cfg.reward_model
    if rm.path is not None:
        return RewardModelPlan(rm)
    model_cfg = cfg.model if rm.base_model in (None, cfg.model.name) else entry("model", rm.base_model)
    if table2:
        dataset_cfg = cfg.dataset
    elif rm.dataset is None:
        raise ConfigError(f"reward_model={rm.name} sets neither `path` (an existing reward model) nor `dataset` "
                          f"(its training data); set one, e.g. reward_model.dataset=ultrafeedback_fg")
    else:
        dataset_cfg = cfg.dataset if rm.dataset == cfg.dataset.name else entry("dataset", rm.dataset, cfg.scale)
    if not load:
        return RewardModelPlan(rm, model_cfg, dataset_cfg)
    mirror = cfg.paths.mirror
    train = data.load_preferences(dataset_cfg, mirror=mirror)
    heldout = data.load_preferences(dataset_cfg, split=dataset_cfg.eval_split, mirror=mirror) if dataset_cfg.eval_split else None
    return RewardModelPlan(rm, model_cfg, dataset_cfg, train, heldout)


def recipe(rm) -> dict:
    """The fields of a trained reward model's config that determine it: all but those declared above (so a field
    added later is keyed until declared)."""
    skip = NON_DETERMINING + EXISTING + INPUTS
    return {k: v for k, v in OmegaConf.to_container(rm, resolve=True).items() if k not in skip}


def stage_spec(p: RewardModelPlan, base: ModelRef) -> dict:
    """What a trained reward model's stage key is computed from."""
    return {"base": base.key or {"path": base.path, "revision": base.revision}, "model": models.identity(p.model),
            "data": data.identity(p.dataset), "recipe": recipe(p.cfg), "sequences_end": "eos",
            "encoding": ENCODING}


@dataclass
class RewardModel:
    """A reward model ready to load: weights, the chat template it reads, and how it came to be."""

    ref: ModelRef
    chat_template: str | None
    info: dict

    @property
    def identity(self) -> dict:
        """How policy and evaluation stages name it: its stage key, or the path it was loaded from."""
        if self.ref.key:
            return {"stage": self.ref.key}
        return {"path": self.ref.path, "revision": self.ref.revision, "chat_template": self.chat_template}
