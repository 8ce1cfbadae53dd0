"""The base (SFT) model of a run: built locally for `model=tiny`, loaded from the hub or a directory otherwise.

torch and transformers are imported where a model is loaded: naming models and their stages (ModelRef,
base_model_stage) is part of planning a sweep, which imports no ML library (harness.planning).

On an offline compute node a hub model is read from the offline mirror (`paths.mirror` / $HARNESS_MIRROR), where
`python -m harness.data prefetch --models` put it: the run names its mirror once (`use_mirror`), every loader asks
`ModelRef.weights()` where to read, and a model the machine cannot reach is an error naming that command, found
before any stage starts (`check_models`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from omegaconf import OmegaConf

from harness import console
from harness.chat import apply_template, sentencepiece_segments
from harness.config.errors import UserError
from harness.records.stages import MARKER, CorruptStage, Stage, content_digest, problem
from harness.tiny.data import TINY_DIR

if TYPE_CHECKING:
    import torch

# The offline mirror the models of this process's run are read from (None: the hub, or its local cache).
MIRROR: dict[str, str | None] = {"dir": None}


class MissingModel(UserError, FileNotFoundError):
    """A hub model the run needs that this machine cannot read: not in the mirror, or offline and not cached."""


class HubModel(NamedTuple):
    """A hub model a run reads, and the override that makes the run read it (for the prefetch command)."""

    path: str
    revision: str | None
    wanted_by: str


def use_mirror(mirror: str | None) -> None:
    MIRROR["dir"] = str(mirror) if mirror else None


def is_hub_id(path: str | None) -> bool:
    """`org/name` that is not a directory here: a model to download (or to find in the mirror)."""
    return bool(path) and re.fullmatch(r"[\w.-]+/[\w.-]+", path) is not None and not Path(path).exists()


def prefetch_command(wanted_by: str, mirror: str | None) -> str:
    return f"python -m harness.data prefetch --models {wanted_by} paths.mirror={mirror or '<dir>'}"


def where_to_read(path: str, revision: str | None, mirror: str | None,
                  wanted_by: str = "<the run's overrides>") -> tuple[str, str | None]:
    """(path or directory, revision) to hand from_pretrained: the mirror's copy of a hub model when a mirror is set."""
    if not mirror or not is_hub_id(path):
        return path, revision
    from harness.data.mirror import mirrored_model, model_path
    from harness.data.revisions import revision_label

    found = mirrored_model(mirror, path, revision)
    if found is None:
        raise MissingModel(f"model {path} (revision {revision_label(revision)}) is not in the offline mirror {mirror} "
                           f"(expected {model_path(mirror, path, revision)}); on a machine with network access run: "
                           f"{prefetch_command(wanted_by, mirror)}")
    return str(found), None


def check_models(models: list[HubModel], mirror: str | None) -> None:
    """Every hub model a run needs can be read here: from the mirror when one is set; else, offline, from the local
    hub cache. Raises MissingModel naming the prefetch command; found before any stage starts."""
    from harness.data.mirror import hub_unreachable, offline
    from harness.data.revisions import hub_revision, revision_label

    for model in models:
        if not is_hub_id(model.path):
            continue
        if mirror:
            where_to_read(model.path, model.revision, mirror, model.wanted_by)
            continue
        if _cached(model.path, hub_revision(model.revision)):
            continue
        why = "HF_HUB_OFFLINE is set" if offline() else hub_unreachable()
        if why:
            raise MissingModel(f"model {model.path} (revision {revision_label(model.revision)}) is not on this machine "
                               f"and the hub cannot be reached ({why}); on a machine with network access run: "
                               f"{prefetch_command(model.wanted_by, None)}, then run with paths.mirror=<dir> (or "
                               "HARNESS_MIRROR=<dir>)")


def _cached(repo_id: str, revision: str | None) -> bool:
    """The model's config is in the local hub cache (what transformers reads offline)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)


# ModelConfig fields that change no number: names for runs and tables, the planner's size.
NOT_IDENTITY = ("name", "label", "params_b")
# Fields evaluation reads and training does not.
EVAL_ONLY = ("eval_chat_template",)
# Fields that locate the weights: keyed through the model's ModelRef (the tiny model's stage key, or path and revision).
WEIGHTS = ("path", "revision", "tiny")


@dataclass
class ModelRef:
    """Where a model's weights and tokenizer are, and the key of the stage that made them (if any)."""

    path: str
    revision: str | None = None
    key: str | None = None

    def weights(self) -> tuple[str, str | None]:
        """(path, revision) to load from: the offline mirror's copy of a hub model when the run has a mirror."""
        return where_to_read(self.path, self.revision, MIRROR["dir"])


def identity(model_cfg, evaluation: bool = False) -> dict:
    """How a stage that trains from (or, with `evaluation`, evaluates) this model reads it beyond its weights: the chat
    format, the compute dtype, and any field added later unless declared above."""
    skip = NOT_IDENTITY + WEIGHTS + (() if evaluation else EVAL_ONLY)
    return {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items() if k not in skip}


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# Trainable weights and their AdamW state are kept in fp32 whatever `model.dtype` says: at the paper's learning rates
# (5e-7..1e-5) most bf16 updates round away (EasyLM keeps fp32 params: llama_model.py param_dtype=float32).
# `model.dtype` is the compute dtype of trained models (autocast) and the weights dtype of frozen ones.
TRAINABLE_DTYPE = "float32"
DTYPES = ("bfloat16", "float16", "float32")


def torch_dtype(name: str) -> torch.dtype:
    """`model.dtype` as torch's, on every device (CPU has bf16 kernels too; the tiny model sets float32)."""
    if name not in DTYPES:
        raise ValueError(f"model.dtype={name!r}; valid: {list(DTYPES)}")
    import torch

    return getattr(torch, name)


def autocast(dtype: str, device_type: str):
    """Mixed-precision compute for fp32 trainable weights: bf16/fp16 matmuls under autocast, fp32 otherwise."""
    import torch

    if torch_dtype(dtype) == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch_dtype(dtype))


def _bundled_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(TINY_DIR.glob("*.jsonl")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def base_model_stage(model_cfg, stages_root: str) -> Stage | None:
    """The stage that builds the tiny model; None for a model loaded from the hub or a directory."""
    if model_cfg.tiny is None:
        return None
    return Stage("model", {"tiny": OmegaConf.to_container(model_cfg.tiny), "data": _bundled_digest(),
                           "chat_template": model_cfg.chat_template}, Path(stages_root))


def base_model(model_cfg, stages_root: str) -> tuple[ModelRef, dict]:
    """The SFT checkpoint a run starts from; builds (once) and caches the tiny model."""
    if model_cfg.tiny is None:
        if not model_cfg.path:
            raise ValueError(f"model {model_cfg.name!r} sets neither `path` nor `tiny`")
        return ModelRef(model_cfg.path, model_cfg.revision), {"reused": True}
    from harness.tiny import model as tiny

    spec = OmegaConf.to_object(model_cfg.tiny)
    stage = base_model_stage(model_cfg, stages_root)
    result, reused = stage.run(lambda d: tiny.build(spec, d / "model"), label=f"tiny base model {stage.key}")
    return ModelRef(str(stage.dir / "model"), key=stage.key), {**result, "reused": reused, "key": stage.key}


def stage_content(ref: ModelRef) -> str | None:
    """The content digest of the complete stage that made `ref` (its outputs' sha256s); None for a model named by hub
    id or directory (its path and revision name it)."""
    made_by = Path(ref.path).parent
    if not ref.key or not (made_by / MARKER).exists():
        return None
    return content_digest(made_by)


def verify_weights(ref: ModelRef) -> None:
    """Before a stage-made model answers: its files are those its COMPLETE lists, byte for byte (sha256). Its answers
    are cached under that content (harness.eval.generation_cache) and scored: weights changed on disk since (a bad
    copy, a disk error, NaN-filled) must not answer. A mismatch deletes the stage, naming it, and fails."""
    made_by = Path(ref.path).parent
    if not ref.key or not (made_by / MARKER).exists():
        return
    why = problem(made_by, full=True)
    if why:
        console.say(f"[harness] the complete stage {made_by} is corrupt ({why}); deleting it (the next run rebuilds it)")
        shutil.rmtree(made_by, ignore_errors=True)
        raise CorruptStage(f"the stage {made_by} is corrupt ({why}); it was deleted: rerun the command to rebuild it")


def load_tokenizer(ref: ModelRef, chat_template: str | None):
    from transformers import AutoTokenizer

    path, revision = ref.weights()
    tok = sentencepiece_segments(AutoTokenizer.from_pretrained(path, revision=revision))
    apply_template(tok, chat_template)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def check_8bit_support() -> None:
    """eval.load_in_8bit needs bitsandbytes and a CUDA GPU: found before any stage runs, not when evaluation starts."""
    import importlib.util

    from harness.config.errors import ConfigError

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("eval.load_in_8bit=true needs bitsandbytes, which is not installed: on a CUDA machine "
                          "`pip install bitsandbytes`, or set eval.load_in_8bit=false (model.dtype)")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("eval.load_in_8bit=true needs a CUDA GPU (bitsandbytes' 8-bit kernels) and this machine has "
                          "none; run the evaluation on a GPU node, or set eval.load_in_8bit=false (model.dtype)")


def load_causal_lm_8bit(ref: ModelRef):
    """The causal LM as open-instruct's --load_in_8bit loaded it (ea3467dbb eval/utils.py load_hf_lm): LLM.int8 weights
    through bitsandbytes, placed by accelerate (device_map auto), every other tensor in float16 (the dtype transformers
    then imposed on 8-bit models)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    return AutoModelForCausalLM.from_pretrained(ref.path, revision=ref.revision, device_map="auto", dtype=torch.float16,
                                                quantization_config=BitsAndBytesConfig(load_in_8bit=True)).eval()


def load_causal_lm(ref: ModelRef, dtype: str = "float32", on=None):
    """The causal LM at its pinned revision, in `dtype`, on `on` (a trainer's per-process device: load after the
    trainer's config has set it, or every process lands on cuda:0) or on this machine's default device."""
    from transformers import AutoModelForCausalLM

    path, revision = ref.weights()
    model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=torch_dtype(dtype))
    return model.to(on or device())
