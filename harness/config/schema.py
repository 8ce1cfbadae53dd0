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
from omegaconf import II, MISSING, OmegaConf

# The paper's six categories, in table order.
CATEGORIES = ("factuality", "reasoning", "coding", "truthfulness", "safety", "inst_following")
# The paper's benchmarks of each category, by their key in a suite (protocol, "Categories and the Average"). Only
# these join a paper category: any other benchmark names a category of its own, and is reported apart and kept out
# of the Average (harness.eval.categories), so adding one never changes the paper's numbers.
PAPER_BENCHMARKS = {"factuality": ("mmlu",), "reasoning": ("gsm8k", "bbh"), "coding": ("humaneval_plus", "mbpp_plus"),
                    "truthfulness": ("truthfulqa",), "safety": ("toxigen", "xstest"),
                    "inst_following": ("alpaca_eval1", "alpaca_eval2", "ifeval")}
# The category of a benchmark that scores the reward model, not the policy (RewardBench).
REWARD_MODEL_CATEGORY = "reward_model"


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
    # The template evaluation uses when it differs from `chat_template`: "plain" = open-instruct's prompts for an
    # untuned model (no chat format; each benchmark's `options.plain` is merged into it). Null: `chat_template`.
    eval_chat_template: Optional[str] = None
    # Compute dtype of trained models (their weights and optimiser state stay fp32, harness.models.TRAINABLE_DTYPE)
    # and weights dtype of frozen ones (reference, reward model when scoring); on every device.
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
    # Commit of `hub_id` the split is read at. The repo's main changed after the paper ("fix uf files"); this is the
    # commit a third-party card names as main (conformance note, data.md, defect 4): `python -m harness.data verify`
    # checks that it resolves. "to-verify": not pinned yet (reads main, warns, is not cached); null follows main.
    revision: Optional[str] = "6e87e7ba11eeb2a21db459cf13267f62d1feea23"
    # The split's file inside the repo ({split} is filled in), so one split is read without preparing all 28: the
    # repo's tree holds data/<split>-00000-of-00001.jsonl (conformance note, data.md 2a). null: the repo's layout decides.
    data_files: Optional[str] = "data/{split}-00000-of-00001.jsonl"
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
    # Drop pairs whose chosen and rejected are identical (counted as `identical_pair`). This project's own filter: the
    # paper's conversion script kept them (false reproduces it).
    drop_identical_pairs: bool = True
    # Rows of the released split when they differ from Table 1's `paper_rows` (ultrafeedback_overall: 58,933
    # released vs 60,908 printed); `python -m harness.data verify` compares the released split with it.
    released_rows: Optional[int] = None
    # source=mixture: the components.
    mixture: list[MixtureComponent] = field(default_factory=list)
    # source=upstream: original hub dataset and converter (harness.data.converters).
    upstream_hub_id: Optional[str] = None
    upstream_config: Optional[str] = None
    upstream_split: Optional[str] = None
    # Commit of the upstream dataset (or, for a URL in upstream_data_files, the commit filled into its {revision});
    # "to-verify": not pinned yet (reads main; `python -m harness.data verify` prints the commit to pin).
    upstream_revision: Optional[str] = "to-verify"
    # The upstream split's file when the repo's layout cannot name it: a path inside the repo, or a URL ({revision}
    # filled in) for data not on the hub. null: the repo's layout names the split's files.
    upstream_data_files: Optional[str] = None
    # Upstream rows kept (seeded shuffle, then the first N) before conversion: the paper's conversion script caps
    # every source at 500k (protocol: SHP-2 and StackExchange "capped at 500k"); null keeps all.
    upstream_max_rows: Optional[int] = 500000
    converter: Optional[str] = None
    # Converter-specific settings (documented in each converter module).
    converter_options: dict[str, Any] = field(default_factory=dict)
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
    # Commit of `hub_id`; main changed after the paper ("add tags row"). No commit is known offline: "to-verify" reads
    # main (with a warning, uncached) until `python -m harness.data verify` prints the commit to pin here.
    revision: Optional[str] = "to-verify"
    # The split's file inside the repo; null: the repo's layout names it (the file names are not verified offline).
    data_files: Optional[str] = None
    files: Optional[dict[str, str]] = None
    train_split: str = "train"
    max_samples: Optional[int] = None
    seed: int = 42
    # Prompts longer than this many tokens are dropped (protocol: 1024).
    max_prompt_tokens: int = 1024
    # Share of invalid prompts (empty, not ending with a user turn, over-length) above which loading stops.
    max_bad_fraction: float = 0.1


# --------------------------------------------------------------------------------------------- algorithms
@dataclass
class OptimConfig:
    """Optimisation shared by every trainer (protocol: AdamW beta2 0.95, clip 1.0, no weight decay)."""

    name: str = MISSING
    # The module defining the algorithm (harness.algorithms); null: harness.algorithms.<name>.
    module: Optional[str] = None
    learning_rate: float = MISSING
    # linear | constant_with_warmup | cosine ...
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    epochs: float = 1.0
    # Overrides epochs when > 0.
    max_steps: int = -1
    # Examples per optimiser step across all processes: the recipe's value. Per-device batch and gradient
    # accumulation are derived from it and the number of processes (harness.train.batching).
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
    module: Optional[str] = None


@dataclass
class DPOConfig(OptimConfig):
    name: str = "dpo"
    # Protocol: beta 0.1, sigmoid loss, frozen SFT reference.
    beta: float = 0.1
    loss_type: str = "sigmoid"
    # Compute reference log-probs once before training (TRL's precompute_ref_log_probs) instead of a reference forward
    # pass at every step of every epoch, and keep no reference model in memory. The same numbers within float
    # tolerance (tests/test_dpo_precompute.py), so not part of a stage's key (harness.algorithms.NON_DETERMINING).
    # On by default (inferred: it changes when the reference is computed, not the method or its numbers); single-process
    # training only (harness.train.dpo.precompute_reference).
    precompute_ref_log_probs: bool = True
    # false (the paper's DPO command sets no remove_truncated_samples: EasyLM data.py truncates to seq_length from the
    # start and keeps the pair): TRL truncates prompt + completion to max_length (keep_start). true: drop pairs over
    # max_length before training, counted against dataset.max_bad_fraction (what reward models do, protocol).
    drop_overlength: bool = False
    # Learning curves (not in the paper): every N optimiser steps the policy is saved (a `checkpoint` stage of its own)
    # and evaluated on the suite `curve_suite` (conf/eval/<name>.yaml at the run's scale), the scores logged as step
    # metrics `curve/...`; the final policy is also scored on it. 0: no curve. Neither changes the trained weights
    # (tests/test_curves.py), so neither is part of the recipe (harness.algorithms.NON_DETERMINING). Single-process
    # training only (the checkpoint is the model of that process).
    eval_every: int = 0
    curve_suite: str = "curve"


# Which engine samples PPO's and GRPO's rollouts (harness/train/rollout.py).
ROLLOUT_BACKENDS = ("hf", "vllm")


@dataclass
class RolloutConfig:
    """How an online algorithm (PPO, GRPO) samples its rollouts (harness/train/rollout.py)."""

    # hf (default): transformers `generate` on the policy itself, on CPU and GPU. vllm: a vLLM engine colocated with
    # each training process (vLLM's external_launcher; TRL's colocate mode for GRPO), asleep while the models train,
    # the policy's weights pushed into it before every rollout; what verl, OpenRLHF, open-instruct's GRPO and TRL's
    # `use_vllm` sample with (inferred for this harness: the paper's EasyLM sampled with its own JAX generate). Needs a
    # CUDA GPU and `pip install -e ".[vllm]"`. Part of the policy stage's key: other kernels and random streams sample
    # other numbers (and GRPO's vllm path adds TRL's importance-sampling correction).
    rollout_backend: str = "hf"
    # rollout_backend=vllm: share of each GPU's memory the engine may take (weights in model.dtype plus KV cache); it
    # must fit beside what training keeps on the GPU while the engine samples (the 13B policy alone is ~26 GB in bf16,
    # so PPO at 13B needs the offload profile). Inferred; TRL's GRPO default is 0.3. Memory and speed only
    # (harness.algorithms.NON_DETERMINING).
    vllm_gpu_memory_utilization: float = 0.5
    # rollout_backend=vllm: put the engine to sleep (level 2: weights and KV cache freed; TRL's vllm_enable_sleep_mode)
    # while the models train, so training gets the memory back. Inferred (colocated engines sleep in verl and
    # OpenRLHF). Memory and speed only.
    vllm_sleep: bool = True


@dataclass
class PPOConfig(RolloutConfig, OptimConfig):
    """The project's own PPO (harness.train.ppo); defaults are the paper's (protocol, PPO).

    Steps: one PPO *iteration* samples `rollout_batch_size` responses and takes (rollout / minibatch) x ppo_epochs
    optimiser steps of `effective_batch_size` (= the paper's minibatch, 64) examples each.
    """

    name: str = "ppo"
    # PPO iterations to run (rollout batches: the paper's ~118 "steps"); overrides epochs when > 0.
    max_steps: int = -1
    # Checkpoint every N PPO iterations.
    save_steps: int = 10
    # Prompts per rollout batch across all processes (protocol: 512), one response each.
    rollout_batch_size: int = 512
    # The paper's minibatch: examples per optimiser step, i.e. `effective_batch_size` (kept equal; checked).
    minibatch_size: int = II(".effective_batch_size")
    # Passes over each rollout batch (protocol: 1).
    ppo_epochs: int = 1
    # Response length and sampling temperature (protocol: up to 1024 new tokens at 0.7).
    max_new_tokens: int = 1024
    temperature: float = 0.7
    # false (the paper's code, EasyLM llama_train_ppo.py ppo_loss / ppo_forward_backward: log_softmax of the raw
    # logits): log-probs of policy, reference and ratio from the raw logits. true (TRL, open-instruct): divided by the
    # sampling temperature, so the ratio is that of the sampling distribution; the same kl_coef then penalises
    # about 1.7x harder at T=0.7 (conformance note, training.md C.2).
    logprobs_at_temperature: bool = False
    # Top-k / top-p of the sampler: the paper's code sampled with transformers 4.43's default top_k=50 (EasyLM
    # llama_train_ppo.py generation config sets neither; tpu_vm_setup.sh pins 4.43.2); 0 disables top-k. Nothing
    # else touches the logits, whatever the checkpoint's generation_config.json says (harness.train.ppo.sampling_config).
    top_k: int = 50
    top_p: float = 1.0
    # Queries start with BOS. false, the paper's code: EasyLM encoded its PPO prompts without special tokens
    # (data.py TuluPromptDataset, add_special_tokens=False, no <s> in the text), so policy, reference, value and reward
    # model read every query without <s>, although the policy and the reward model were trained with it (data.py
    # PreferenceDataset). true keeps the chat template's <s>.
    query_bos: bool = False
    # Prompts generated at once per process (memory only: not part of the recipe).
    generation_batch_size: int = 16
    # Fixed per-token KL coefficient (0.0325 with the 70B reward models, conf/algorithm_rm); no adaptive control.
    kl_coef: float = 0.05
    # A response without EOS is scored this instead of the reward model's score (the "EOS trick"); null disables.
    missing_eos_penalty: Optional[float] = -10.0
    # Standardise the reward-model scores over the rollout batch (protocol: no).
    normalize_reward: bool = False
    # Whiten the per-token rewards (KL penalty + score) over the rollout batch, mean kept (protocol: no).
    whiten_rewards: bool = False
    # Whiten advantages (protocol: yes), over the minibatch or the rollout batch (recompute_per_minibatch).
    whiten_advantages: bool = True
    # true (the paper's code, EasyLM llama_train_ppo.py ppo_forward_backward, run for every minibatch): before each
    # optimiser step, old log-probs, values, KL-penalised rewards and advantages are recomputed with the current
    # parameters and advantages whitened over the minibatch (all processes' rows), so the ratio starts at 1 and both
    # clips are inert. false (textbook PPO: TRL, open-instruct): computed once per rollout batch, whitened over it.
    recompute_per_minibatch: bool = True
    # true (the paper's code: separate policy and value optimisers, each clip_by_global_norm(max_grad_norm), EasyLM
    # llama_train_ppo.py + optimizers.py): policy and value gradients are clipped separately. false (TRL): one norm
    # over both, so a large value gradient shrinks the policy step.
    separate_grad_clipping: bool = True
    # GAE discount and lambda (protocol: 1.0, 0.95).
    gamma: float = 1.0
    lam: float = 0.95
    # Clip ranges of the policy ratio and of the value update, and the value-loss weight (protocol: 0.2, 0.2, 0.1).
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    # Value model starts from the reward model (protocol), else from the SFT policy with a new scalar head.
    value_from_reward_model: bool = True
    # Table 2 semantics: the reward model is trained on the run's dataset and prompts come from it.
    table2: bool = False


# What GRPO's reward reads: the reward model's score, GSM8k answer correctness (verifiable), or their sum.
GRPO_REWARDS = ("reward_model", "gsm8k", "both")


@dataclass
class GRPOConfig(RolloutConfig, OptimConfig):
    """GRPO through TRL's GRPOTrainer (harness.train.grpo). Not in the paper: an extension run with PPO's budget:
    conf/algorithm/grpo.yaml's epochs (1 / num_generations) give as many completions and optimiser steps as PPO's
    one epoch of one response per prompt at the same 64 per step."""

    name: str = "grpo"
    # Completions per prompt (the group); effective_batch_size (completions per step) must be a multiple of it.
    num_generations: int = 8
    max_new_tokens: int = 1024
    temperature: float = 0.7
    # KL against the SFT reference; > 0 so GRPO is comparable with PPO (TRL's default is 0).
    beta: float = 0.05
    # PPO's EOS trick: a completion without EOS scores this instead of the reward model's score (null disables).
    missing_eos_penalty: Optional[float] = -10.0
    # reward_model | gsm8k (verifiable answer correctness) | both
    reward: str = "reward_model"
    # TRL's loss aggregation and reward scaling (TRL 1.16 defaults: dapo, group) and ratio clip.
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    # Where the GSM8k reward finds gold answers, joined to the prompts by question text: a hub split (openai/gsm8k
    # train for the tulu-2.5 gsm8k prompts) or a local JSON-lines file in its schema (question, answer).
    answers_hub_id: str = "openai/gsm8k"
    answers_config: Optional[str] = "main"
    answers_split: str = "train"
    answers_file: Optional[str] = None
    # Table 2 semantics, as for PPO: the reward model is trained on the run's dataset and prompts come from it.
    table2: bool = False


@dataclass
class BestOfNConfig:
    """Best-of-N as an evaluation-time policy (harness.algorithms.best_of_n): the SFT model samples N, the reward model keeps one."""

    name: str = "best_of_n"
    module: Optional[str] = None
    # Samples per prompt and their temperature (protocol: 16 at 0.7).
    n: int = 16
    temperature: float = 0.7
    top_p: float = 1.0
    # Candidates the reward model scores at once (memory only).
    score_batch_size: int = 16


# --------------------------------------------------------------------------------------------- reward model
@dataclass
class RewardModelConfig:
    """A reward model: trained here from an SFT model (harness.train.reward; a stage of its own), or an existing one."""

    # Key used in run names and tables; "none" for algorithms that need no reward model.
    name: str = "none"
    module: Optional[str] = None
    label: str = ""
    # An existing sequence-classification reward model (hub id or directory); null trains one.
    path: Optional[str] = None
    revision: Optional[str] = None
    # Chat format an existing reward model reads ("tulu", or null: its tokenizer's own); a trained one uses its base
    # model's.
    chat_template: Optional[str] = "tulu"
    # Base model config name (conf/model) the reward model is trained from; null: the run's model.
    base_model: Optional[str] = None
    # Training data (a conf/dataset entry) when trained here; `algorithm.table2=true` replaces it by the run's dataset.
    dataset: Optional[str] = None
    # Protocol: lr 1e-5 decaying linearly to 1e-6 (a polynomial schedule of power 1), warmup 0.03, 1 epoch,
    # effective batch 512, pairs over 4096 tokens dropped; AdamW beta2 0.95, clip 1.0, no weight decay.
    learning_rate: float = 1e-5
    final_learning_rate: float = 1e-6
    lr_scheduler: str = "polynomial"
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = -1
    effective_batch_size: int = 512
    per_device_batch_size: int = 1
    max_length: int = 4096
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # Seed of reward-model training: its own, so every run naming this reward model reuses one stage.
    seed: int = 42
    # Not part of the recipe (memory, logging, checkpoints).
    activation_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int = 50
    # Parameters in billions (the sweep planner's cost model).
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
    # Extra stop strings (the model's EOS always stops generation).
    stop: list[str] = field(default_factory=list)


@dataclass
class JudgeConfig:
    """A model that scores outputs: an OpenAI-compatible endpoint, a local Hugging Face model, or string matching.

    The API key is never part of a config: `api_key_env` names the environment variable that holds it.
    """

    # openai: an OpenAI-compatible chat-completions endpoint; hf: a local Hugging Face model (a causal LM that picks
    # one of the answer options, or a sequence classifier for ToxiGen); string_match: XSTest's refusal prefixes.
    kind: str = MISSING
    # openai: model name at the endpoint; hf: hub id or local directory, or "tiny" for the model built here (tests).
    model: Optional[str] = None
    revision: Optional[str] = None
    # openai: base URL of the API (the part before /chat/completions).
    base_url: str = "https://api.openai.com/v1"
    # openai: NAME of the environment variable holding the API key (null: send no key).
    api_key_env: Optional[str] = "OPENAI_API_KEY"
    # openai: longest reply in tokens, seconds per request, retries after a failed request.
    max_tokens: int = 16
    timeout_s: float = 60.0
    max_retries: int = 2
    # hf: prompts scored per forward pass.
    batch_size: int = 8


@dataclass
class BenchmarkConfig:
    # Name and regime version: two numbers from different regimes never share a name.
    name: str = MISSING
    version: str = "1"
    # Named explicitly: one of CATEGORIES (the paper's benchmarks of it only: PAPER_BENCHMARKS), reward_model (a
    # benchmark of the reward model), or a category of its own (a lowercase name: reported apart, out of the Average).
    category: str = MISSING
    # Share of empty generations above which the benchmark fails instead of being scored (harness.eval.suite
    # BrokenOutputs: a broken model, e.g. NaN weights, or a stop string that matches at once, never scores 0).
    # Inferred: a working chat model answers nearly every prompt; 0.1 leaves room for answers a stop string
    # legitimately ends at once. 1.0 scores every generation as it is: wiring suites whose barely trained stand-ins may
    # answer nothing (conf/eval/tiny_grid.yaml). Any non-finite log-likelihood fails whatever this says.
    max_empty_fraction: float = 0.1
    # How it is scored: lm_eval (an lm-eval task) or a runner of harness.eval.
    runner: str = "lm_eval"
    # lm-eval task the generated task file includes ("{subset}" is replaced by each of `subsets`), and its YAML
    # relative to lm_eval/tasks/ (null: found by task name, which scans lm-eval's task folder).
    task: Optional[str] = None
    task_file: Optional[str] = None
    num_fewshot: Optional[int] = None
    apply_chat_template: bool = True
    fewshot_as_multiturn: bool = True
    # Metric reported (lm-eval's "<metric>,<filter>" key for lm_eval runners) and the factor to 0-100.
    metric: str = MISSING
    scale: float = 100.0
    # Random subset of the test split (protocol: GSM8k 200, seed 42; BBH 40 per task); null = the full test set.
    limit: Optional[int] = None
    subset_seed: int = 42
    # How `limit` rows are drawn (harness.eval.sources.subset): sample (random.sample: GSM8k, BBH) | shuffle (shuffle,
    # then the head: ToxiGen). With `subsets`, one generator seeded once draws the parts in their listed order.
    subset_draw: str = "sample"
    # Rows held out at the head of the test split before subsetting (protocol: MBPP+ drops its first 100).
    skip_first: int = 0
    # Named parts scored separately (MMLU subjects, BBH tasks, ToxiGen groups); "{subset}" in hub_config, split and
    # files is replaced by each name, and `limit` applies per part.
    subsets: Optional[list[str]] = None
    # Source data: hub dataset, or local files (split -> path; relative paths are under harness/assets/).
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    split: str = "test"
    # Hub revision: required whenever `hub_id` is read (a commit; a branch such as "main" is accepted with a warning,
    # since it can move under the same config). Null only for benchmarks read from `files`.
    revision: Optional[str] = None
    # Hub data not loadable by hub id (a repo with a loading script, which datasets 4+ refuses): a URL or hf:// path of
    # a JSON/JSON-lines/parquet file, read with the matching builder, as `upstream_data_files` of datasets. "{revision}"
    # and "{subset}" are filled in. `hub_id`, `hub_config` and `split` still name the mirror entry.
    data_files: Optional[str] = None
    files: Optional[dict[str, str]] = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    # Judges and classifiers by role (truth/info for TruthfulQA, refusal for XSTest, annotator for AlpacaEval,
    # classifier for ToxiGen).
    judges: dict[str, JudgeConfig] = field(default_factory=dict)
    # Runner-specific settings (prompt templates, k of pass@k, sandbox limits, lm-eval task overrides ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlacementConfig:
    """Where the HF backend puts a policy's layers (a 70B policy does not fit one GPU)."""

    # auto: accelerate fills the GPUs in order, then CPU memory, then `offload_folder` on disk; null: one device.
    device_map: Optional[str] = None
    # Per-device budget, e.g. {0: 70GiB, 1: 70GiB, cpu: 200GiB} (keys: GPU index or "cpu"); null: all free memory.
    max_memory: Optional[dict[str, str]] = None
    offload_folder: Optional[str] = None


@dataclass
class EvalConfig:
    # Suite name recorded with the run (tiny, paper, bon ...).
    suite: str = MISSING
    # hf: batched transformers generation; vllm: lm-eval's vLLM backend (GPU extra).
    backend: str = "hf"
    # backend=vllm: GPUs per model copy (vLLM tensor parallelism; 8 for a 70B policy on an 8-GPU node).
    tensor_parallel_size: int = 1
    # backend=hf: layer placement over several devices (device_map auto with max_memory) for big policies.
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    batch_size: int = 8
    # backend=hf, CUDA GPUs with bitsandbytes: the policy's weights in 8 bits (LLM.int8, float16 elsewhere), placed by
    # accelerate, as open-instruct's --load_in_8bit. The paper-era regime ran MMLU and TruthfulQA so
    # (allenai/open-instruct@ea3467dbb scripts/submit_eval_jobs.py:173,324) and the rest in 16 bits with vLLM; the
    # default keeps every benchmark in model.dtype. It changes numbers: part of the evaluated policy's identity.
    load_in_8bit: bool = False
    # Rescore the saved samples of every benchmark (prompts, outputs, judge verdicts) without loading a model.
    recompute: bool = False
    # Seed of evaluation sampling (benchmarks generating at temperature > 0: HumanEval+ and MBPP+ at 0.8). null: the
    # paper's setup, no seed of its own (as before this field). `eval.seed=${seed}` follows the run's seed, so a seed
    # sweep also measures sampling variance. When set it is part of the stage key and generation cache of every
    # sampled benchmark (greedy ones are shared by all seeds).
    seed: Optional[int] = None
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

    # Training processes per node (torchrun-style, through `accelerate launch`); 1 on 1 node trains in the run's own
    # process. The Slurm launcher sets it from the job's resource profile (harness.sweep): one per GPU.
    processes: int = 1
    # Nodes of the job: > 1 starts one launcher per node with srun, joined by a c10d rendezvous on the first node
    # (harness/train/processes.py); the effective batch is kept over all nodes x processes.
    nodes: int = 1
    # How those processes share the models (harness/train/sharding.py): none (data parallel, whole models in every
    # process) | fsdp (torch FSDP2: PPO's own, accelerate's for DPO / reward model / GRPO) | fsdp_offload |
    # zero3 | zero3_offload (DeepSpeed through accelerate; not PPO). The Slurm launcher sets it from the job's profile.
    sharding: str = "none"


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
    # Show library logs, warnings and per-step metrics live; by default they go to the run's log file only
    # (results/runs/<run_id>/run.log) and the console shows one line per stage (harness.console).
    verbose: bool = False
    # paper | tiny (conf/scale/): tiny plays every paper entry by a bundled stand-in under its name (the tiny grid).
    scale: str = "paper"
    # How complete stages are checked before reuse (harness.records.stages): size (every output file is there with
    # its recorded size, and any file written since has its recorded sha256; fast) or full (every file's sha256;
    # reads every byte, e.g. after a disk or copy error).
    verify_stages: str = "size"


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
        "algorithm": {"none": NoTrainingConfig, "dpo": DPOConfig, "ppo": PPOConfig, "grpo": GRPOConfig,
                      "best_of_n": BestOfNConfig},
        "reward_model": {"reward_model": RewardModelConfig},
        "prompts": {"prompts": PromptsConfig},
        "eval": {"eval": EvalConfig, "benchmark": BenchmarkConfig},
        "tracking": {"tracking": TrackingConfig},
    }.items():
        for kind, node in kinds.items():
            cs.store(group=f"schema/{group}", name=kind, node=node)


register()
