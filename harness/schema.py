"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each YAML entry under `conf/<group>/` starts from one of these schemas (`defaults: [/schema/<group>/<kind>@_here_]`),
so a misspelt key fails when the config is composed, not hours into a job. Comments give the meaning of a field and,
where it has one, the source of the paper's value (../shared/paper/protocol.md, "protocol" below).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

# The paper's six categories, in table order.
CATEGORIES = ("factuality", "reasoning", "coding", "truthfulness", "safety", "inst_following")


# --------------------------------------------------------------------------------------------- model
@dataclass
class TinyModelSpec:
    """A Llama-architecture model and byte-level BPE tokenizer built locally, then SFT'd on bundled data."""

    vocab_size: int = 1024
    hidden_size: int = 96
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_position_embeddings: int = 4096
    # Short SFT on harness/assets/tiny/sft.jsonl so that, as in the paper, preference training starts from SFT.
    sft_epochs: float = 6
    sft_learning_rate: float = 3e-3
    sft_batch_size: int = 16
    seed: int = 0


@dataclass
class ModelConfig:
    # Short name used in run names and tables.
    name: str = MISSING
    # Label as the paper prints it.
    label: str = ""
    # Hub id or local directory of the SFT checkpoint the policy starts from (null when `tiny` builds it).
    path: Optional[str] = None
    # Pinned hub revision (commit) of `path`.
    revision: Optional[str] = None
    # "tulu": force the paper's Tulu 2 format (<|user|>\n...\n<|assistant|>\n...</s>); null: the tokenizer's own.
    chat_template: Optional[str] = "tulu"
    # Weights dtype on GPU; CPU runs use float32.
    dtype: str = "bfloat16"
    # Parameters in billions (the sweep planner's cost model).
    params_b: float = 0.0
    # Set for the embedded tiny model: build it here instead of loading `path`.
    tiny: Optional[TinyModelSpec] = None


# --------------------------------------------------------------------------------------------- data
@dataclass
class MixtureComponent:
    # Name of a conf/dataset entry.
    dataset: str = MISSING
    # Rows drawn from it (seeded); null keeps all.
    max_samples: Optional[int] = None


@dataclass
class DatasetConfig:
    # Key used in run names and tables (e.g. ultrafeedback_fg).
    name: str = MISSING
    # Row label in Table 1.
    label: str = ""
    # tulu25: the released converted splits (protocol); upstream: re-derived from the original hub set;
    # files: local JSON lines in the tulu-2.5 schema; mixture: the weighted list in `mixture`.
    source: str = "tulu25"
    hub_id: str = "allenai/tulu-2.5-preference-data"
    # Split of `hub_id` for source=tulu25.
    split: Optional[str] = None
    # Pinned dataset revision (commit or tag); null follows main.
    revision: Optional[str] = None
    # source=files: split name -> JSON-lines path (relative paths are under harness/assets/).
    files: Optional[dict[str, str]] = None
    # Split used for training.
    train_split: str = "train"
    # Held-out preference pairs (split name) on which reward margins are measured before and after training.
    eval_split: Optional[str] = None
    # Seeded subsample size (Table 2 and the Mix use 60,908-row subsets); null keeps every row.
    max_samples: Optional[int] = None
    seed: int = 42
    # Share of invalid rows above which loading stops with an error instead of dropping them.
    max_bad_fraction: float = 0.1
    # source=mixture: the components.
    mixture: list[MixtureComponent] = field(default_factory=list)
    # source=upstream: original hub dataset and converter (harness.data.converters).
    upstream_hub_id: Optional[str] = None
    upstream_config: Optional[str] = None
    upstream_split: Optional[str] = None
    converter: Optional[str] = None
    # Rows in the paper (Table 1), for reports and sanity checks.
    paper_rows: Optional[int] = None


@dataclass
class PromptsConfig:
    # Key used in run names and tables (uf, gsm8k, math, mixed, from_dataset, tiny).
    name: str = MISSING
    label: str = ""
    # tulu25: a split of allenai/tulu-2.5-prompts; files: local JSON lines; from_dataset: the run's dataset.
    source: str = "tulu25"
    hub_id: str = "allenai/tulu-2.5-prompts"
    split: Optional[str] = None
    revision: Optional[str] = None
    files: Optional[dict[str, str]] = None
    train_split: str = "train"
    max_samples: Optional[int] = None
    seed: int = 42
    # Prompts longer than this many tokens are dropped (protocol: 1024).
    max_prompt_tokens: int = 1024


# --------------------------------------------------------------------------------------------- algorithms
@dataclass
class OptimConfig:
    """Optimisation shared by every trainer (protocol: AdamW beta2 0.95, clip 1.0, no weight decay)."""

    name: str = MISSING
    learning_rate: float = MISSING
    # linear | constant_with_warmup | cosine ...
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    epochs: float = 1.0
    # Overrides epochs when > 0.
    max_steps: int = -1
    # Examples per optimiser step across all processes: the recipe's value. Per-device batch and gradient
    # accumulation are derived from it and the number of processes (harness.batching).
    effective_batch_size: int = MISSING
    # Largest micro-batch one process holds in memory.
    per_device_batch_size: int = 1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # Longest sequence (prompt + response) in tokens.
    max_length: int = 4096
    activation_checkpointing: bool = True
    logging_steps: int = 1
    # Checkpoint every N optimiser steps (resume after a kill or preemption).
    save_steps: int = 50


@dataclass
class NoTrainingConfig:
    """Evaluate the SFT model itself (the Tulu 2 SFT rows of the tables)."""

    name: str = "none"


@dataclass
class DPOConfig(OptimConfig):
    name: str = "dpo"
    # Protocol: beta 0.1, sigmoid loss, frozen SFT reference.
    beta: float = 0.1
    loss_type: str = "sigmoid"
    # Compute reference log-probs once before training so no reference model stays in memory.
    precompute_ref_log_probs: bool = False


@dataclass
class PPOConfig(OptimConfig):
    """The project's own PPO (harness.train.ppo); defaults are the paper's (protocol, PPO)."""

    name: str = "ppo"
    # Prompts per rollout batch (one response each) and per gradient minibatch.
    rollout_batch_size: int = 512
    minibatch_size: int = 64
    ppo_epochs: int = 1
    max_new_tokens: int = 1024
    temperature: float = 0.7
    # Fixed per-token KL coefficient (0.0325 with the 70B reward models, conf/algorithm_rm); no adaptive control.
    kl_coef: float = 0.05
    # A response without EOS is scored this instead of the reward model's score (the "EOS trick"); null disables.
    missing_eos_penalty: Optional[float] = -10.0
    normalize_reward: bool = False
    whiten_rewards: bool = False
    whiten_advantages: bool = True
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    # Value model starts from the reward model (else from the policy).
    value_from_reward_model: bool = True
    # Table 2 semantics: the reward model is trained on the run's dataset and prompts come from it.
    table2: bool = False


@dataclass
class GRPOConfig(OptimConfig):
    name: str = "grpo"
    num_generations: int = 8
    max_new_tokens: int = 1024
    temperature: float = 0.7
    # KL against the SFT reference; > 0 so GRPO is comparable with PPO.
    beta: float = 0.05
    # reward_model | gsm8k (verifiable answer correctness) | both
    reward: str = "reward_model"


# --------------------------------------------------------------------------------------------- reward model
@dataclass
class RewardModelConfig:
    # Key used in run names and tables; "none" for algorithms that need no reward model.
    name: str = "none"
    label: str = ""
    # An existing reward model (hub id or directory); null trains one.
    path: Optional[str] = None
    # Base model config name (conf/model) the reward model is trained from; null: the run's model.
    base_model: Optional[str] = None
    # Training data (a conf/dataset entry) when trained here.
    dataset: Optional[str] = None
    # Protocol: lr 1e-5 decaying linearly to 1e-6, warmup 0.03, 1 epoch, effective batch 512, max length 4096.
    learning_rate: float = 1e-5
    final_learning_rate: float = 1e-6
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = -1
    effective_batch_size: int = 512
    per_device_batch_size: int = 1
    max_length: int = 4096
    params_b: float = 0.0


# --------------------------------------------------------------------------------------------- evaluation
@dataclass
class GenerationConfig:
    max_new_tokens: int = 512
    # 0 means greedy.
    temperature: float = 0.0
    top_p: float = 1.0
    # Samples per prompt (pass@k needs n > 1).
    num_samples: int = 1


@dataclass
class BenchmarkConfig:
    # Name and regime version: two numbers from different regimes never share a name.
    name: str = MISSING
    version: str = "1"
    # One of CATEGORIES.
    category: str = MISSING
    # How it is scored: lm_eval (an lm-eval task) or a runner of harness.eval.
    runner: str = "lm_eval"
    # lm-eval task the generated task file includes.
    task: Optional[str] = None
    num_fewshot: Optional[int] = None
    apply_chat_template: bool = True
    fewshot_as_multiturn: bool = True
    # Metric reported (lm-eval's "<metric>,<filter>" key for lm_eval runners) and the factor to 0-100.
    metric: str = MISSING
    scale: float = 100.0
    # Random subset of the test split (protocol: GSM8k 200, seed 42); null = the full test set.
    limit: Optional[int] = None
    subset_seed: int = 42
    # Source data: hub dataset, or local files (split -> path; relative paths are under harness/assets/).
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    split: str = "test"
    revision: Optional[str] = None
    files: Optional[dict[str, str]] = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    # Runner-specific settings (judges, classifiers, k of pass@k ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    # Suite name recorded with the run (tiny, paper, bon ...).
    suite: str = MISSING
    # hf: batched transformers generation; vllm: lm-eval's vLLM backend (GPU extra).
    backend: str = "hf"
    batch_size: int = 8
    benchmarks: dict[str, BenchmarkConfig] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- tracking, paths
@dataclass
class TrackingConfig:
    # mlflow | none
    backend: str = "mlflow"
    # Tracking URI; default: a SQLite store at an absolute path under results/.
    uri: Optional[str] = None
    experiment: str = "harness"
    # Seconds to wait for a remote tracking server before carrying on without it.
    timeout_s: float = 10.0


@dataclass
class PathsConfig:
    # Project home: $HARNESS_HOME, else the directory the command runs in.
    home: str = "${harness_home:}"
    results: str = "${.home}/results"
    # Completed stages (models, evaluations), keyed by configuration hash.
    stages: str = "${.results}/stages"
    # Offline mirror of hub data ($HARNESS_MIRROR); when set, runs read only from it.
    mirror: Optional[str] = "${oc.env:HARNESS_MIRROR,null}"


@dataclass
class LaunchConfig:
    """How training runs inside one job; never part of a run's identity (the effective batch is kept)."""

    # Training processes (torchrun-style, through `accelerate launch`); 1 trains in the run's own process. The Slurm
    # launcher sets it from the job's resource profile (harness.sweep).
    processes: int = 1
    # accelerate config for those processes: a name in conf/accelerate/ (multi_gpu, zero3, fsdp ...) or a path;
    # null: plain data parallel (gloo on CPU, NCCL on GPUs).
    accelerate_config: Optional[str] = None


@dataclass
class Config:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    algorithm: Any = MISSING
    reward_model: RewardModelConfig = MISSING
    prompts: PromptsConfig = MISSING
    eval: EvalConfig = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # Processes per training job (multi-GPU / multi-process training).
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    # Seed of the run (data order, sampling); runs that differ only in seed fill the same table cell.
    seed: int = 42
    # Optional name of the sweep this run belongs to (MLflow parent run).
    sweep: Optional[str] = None
    # Print what the run would do and exit.
    dry_run: bool = False


def _harness_home() -> str:
    return os.path.abspath(os.environ.get("HARNESS_HOME") or os.getcwd())


def register() -> None:
    """Register schemas and resolvers (idempotent)."""
    if not OmegaConf.has_resolver("harness_home"):
        OmegaConf.register_new_resolver("harness_home", _harness_home)
    cs = ConfigStore.instance()
    cs.store(name="harness_schema", node=Config)
    for group, kinds in {
        "model": {"model": ModelConfig},
        "dataset": {"dataset": DatasetConfig},
        "algorithm": {"none": NoTrainingConfig, "dpo": DPOConfig, "ppo": PPOConfig, "grpo": GRPOConfig},
        "reward_model": {"reward_model": RewardModelConfig},
        "prompts": {"prompts": PromptsConfig},
        "eval": {"eval": EvalConfig, "benchmark": BenchmarkConfig},
        "tracking": {"tracking": TrackingConfig},
    }.items():
        for kind, node in kinds.items():
            cs.store(group=f"schema/{group}", name=kind, node=node)


register()
