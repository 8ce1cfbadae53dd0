"""The project's own PPO (TRL removed its PPO in 1.13), faithful to the paper's recipe (protocol, "PPO").

    python -m harness algorithm=ppo reward_model=tiny                       # tiny model, CPU, about a minute
    python -m harness algorithm=ppo model=tulu2_13b reward_model=uf_13b prompts=uf

One iteration samples one response per prompt for a rollout batch (temperature 0.7, top-k 50), scores it with the
reward model at its last token (the EOS trick: a response that never ended gets -10 instead), subtracts a fixed
per-token KL penalty against the frozen SFT reference, estimates advantages by GAE against a value model initialised
from the reward model, whitens them, and takes clipped policy and value steps over minibatches. Every choice is a
field of `PPOConfig` (harness/config/schema.py) with the paper's value as default; by default the objective is the paper's
code's (hamishivi/EasyLM llama_train_ppo.py), not textbook PPO: raw-logit log-probs (`logprob_logits`), old
log-probs, values and advantages recomputed and whitened per minibatch (`refresh`), policy and value gradients
clipped separately (`clip_gradients`). The minibatch loss is one token mean over all its responses across
micro-batches and processes (`loss_normaliser`), so micro-batches are cut length-grouped, each to its own longest
response (harness/train/length_groups.py). Trained models keep fp32 weights under model.dtype autocast (`compute`);
frozen ones load in model.dtype. Rollouts come from `algorithm.rollout_backend` (harness/train/rollout.py):
transformers generate on the policy, or a vLLM engine colocated with each process, fed the policy's weights before
every rollout; either way the trainer recomputes every log-prob itself.

`PPOTrainer` runs under accelerate / torch.distributed: one CPU process here, data-parallel processes elsewhere (each
samples its share of the rollout batch; `effective_batch_size` stays the examples per optimiser step across all of
them, harness.train.batching; tests/test_ppo_distributed.py runs 2 processes), or sharded with torch FSDP2 under
`launch.sharding=fsdp` (harness/train/fsdp.py; tests/test_fsdp.py). Checkpoints
(`<stage>/checkpoints/checkpoint-<iteration>/`, `trainer_state.json` written last) hold models, optimiser, scheduler
and RNG states, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator, InitProcessGroupKwargs
from accelerate.utils import set_seed
from datasets import Dataset
from torch.distributed.tensor import DTensor
from transformers import AutoModelForSequenceClassification, GenerationConfig, get_scheduler
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

from harness.train.batching import plan
from harness.config.errors import ConfigError
from harness.chat import stripped
from harness.models import TRAINABLE_DTYPE, ModelRef, autocast, device, load_causal_lm, load_tokenizer, torch_dtype
from harness.records.stages import latest_checkpoint, write_atomic
from harness.train import fsdp, length_groups, rollout
from harness.train.sharding import check_ppo_sharding
from harness.train.common import STEPS_THIS_PROCESS
from harness.train.reward import RewardScorer, load_reward_model, token_scores

KEEP_CHECKPOINTS = 2
# Loss statistics of each minibatch, logged per iteration (their mean over the iteration's minibatches), beside the
# gradient norms before clipping (PPOTrainer.clip_gradients).
STATS = ("loss/policy", "loss/value", "policy/clipfrac", "policy/approxkl", "val/clipfrac")


# ------------------------------------------------------------------------------------------------- the arithmetic
def masked_mean(x: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor | float | None = None) -> torch.Tensor:
    """Sum of the masked entries over `tokens` (default: the mask's own count). A micro-batch's share of a minibatch
    mean passes the minibatch's token count (loss_normaliser)."""
    return (x * mask).sum() / (mask.sum().clamp(min=1) if tokens is None else tokens)


def loss_normaliser(minibatch_mask: torch.Tensor, accelerator) -> torch.Tensor:
    """What each process divides its micro-batches' token sums by so that the accumulated, process-averaged gradient
    is that of one token mean over the whole minibatch (EasyLM: masked means over the 64 sequences): the minibatch's
    response tokens across all processes, over the number of processes (data-parallel averages the gradients)."""
    tokens = accelerator.reduce(minibatch_mask.sum().float().reshape(1), "sum")[0]
    return tokens.clamp(min=1) / accelerator.num_processes


# EasyLM's whitening epsilon (llama_train_ppo.py whiten: (x - mean) / sqrt(var + 1e-6)).
WHITEN_EPS = 1e-6


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  sum_over_processes: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """(x - mean) / sqrt(var + 1e-6) over the masked entries, with the unbiased variance (Bessel's n / (n - 1)), as
    EasyLM's whiten (llama_train_ppo.py masked_mean, masked_var). EasyLM whitened a whole minibatch, whatever devices
    held it: `sum_over_processes` (an all-reduce sum) makes the mean and variance those of every process's entries;
    None whitens this process's alone. shift_mean=False keeps the mean."""
    total = sum_over_processes or (lambda t: t)
    sums = total(torch.stack([(x * mask).sum(), mask.sum()]).float())
    n = sums[1]
    mean = sums[0] / n.clamp(min=1)
    var = total(((x - mean) ** 2 * mask).sum().float().reshape(1))[0] / n.clamp(min=1)
    var = var * (n / (n - 1) if n > 1 else 1.0)
    out = (x - mean) * torch.rsqrt(var + WHITEN_EPS)
    return (out if shift_mean else out + mean) * mask


def eos_trick(scores: torch.Tensor, ended: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """A response that never wrote EOS is scored `penalty` instead of the reward model's score (protocol: -10)."""
    return scores if penalty is None else torch.where(ended, scores, torch.full_like(scores, penalty))


def per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-kl_coef x (log pi - log pi_ref) on every response token, plus the sequence's score on its last token.
    Returns (rewards, per-token KL)."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(1).long() - 1
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl


def gae(rewards, values, mask, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens; the value after the last token is 0.
    Returns (advantages, returns = advantages + values)."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, advantages + values


def policy_loss(logprobs, old_logprobs, advantages, mask, clip: float, tokens=None):
    """PPO's clipped surrogate, a token mean (over `tokens`, see masked_mean). Returns (loss, share of tokens where the
    clip binds, approximate KL old->new)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask, tokens)
    clipfrac = masked_mean((clipped > unclipped).float(), mask, tokens)
    approxkl = 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask, tokens)
    return loss, clipfrac, approxkl


def value_loss(values, old_values, returns, mask, clip: float, tokens=None):
    """Clipped value loss 0.5 x max((v - R)^2, (v_clipped - R)^2), a token mean (over `tokens`, see masked_mean).
    Returns (loss, share where the clip binds)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_err, clipped_err = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_err, clipped_err), mask, tokens)
    return loss, masked_mean((clipped_err > unclipped_err).float(), mask, tokens)


def sampling_config(alg, tok) -> GenerationConfig:
    """The recipe's sampler and nothing else: temperature, top-k, top-p (harness.train.rollout.Sampling, the same for
    every rollout engine)."""
    return rollout.Sampling.of(alg, tok.eos_token_id).generation_config(tok.pad_token_id)


# ------------------------------------------------------------------------------------------------- models
class PolicyAndValue(torch.nn.Module):
    """Policy and value model as one module: one optimiser, one data-parallel wrapper."""

    def __init__(self, policy, value):
        super().__init__()
        self.policy, self.value = policy, value

    def forward(self, input_ids, attention_mask, position_ids):
        logits = self.policy(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).logits
        return logits, token_scores(self.value, input_ids, attention_mask, position_ids)


def no_dropout(model) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


@dataclass
class Rollout:
    """One rollout batch on this process. Queries are left-padded, responses right-padded; `mask` marks response
    tokens through EOS."""

    query: torch.Tensor
    query_mask: torch.Tensor
    response: torch.Tensor
    mask: torch.Tensor
    ended: torch.Tensor
    logprobs: torch.Tensor = None
    ref_logprobs: torch.Tensor = None
    values: torch.Tensor = None
    entropy: torch.Tensor = None
    rm_scores: torch.Tensor = None
    advantages: torch.Tensor = None
    returns: torch.Tensor = None

    def select(self, rows: torch.Tensor) -> Rollout:
        """The rows `rows` as a rollout of their own (copies)."""
        return Rollout(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                          for f in dataclasses.fields(self)})

    def micro(self, rows: torch.Tensor) -> Rollout:
        """The rows `rows` as a micro-batch of their own, cut to the columns they fill (left of their longest query,
        right of their longest response: harness.train.length_groups.trim)."""
        part = self.select(rows)
        return Rollout(**length_groups.trim({f.name: getattr(part, f.name) for f in dataclasses.fields(part)}, "mask",
                                            ("query", "query_mask")))

    def inputs(self, rows=slice(None)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = torch.cat([self.query[rows], self.response[rows]], 1)
        attn = torch.cat([self.query_mask[rows], self.mask[rows]], 1)
        return ids, attn, (attn.cumsum(1) - 1).clamp(min=0)


def response_slice(out: torch.Tensor, query_len: int) -> torch.Tensor:
    """Positions whose outputs predict (logits) or value (values) each response token."""
    return out[:, query_len - 1 : -1]


# ------------------------------------------------------------------------------------------------- training
def process_group() -> list:
    """accelerate's process-group settings. On GPUs, NCCL for CUDA tensors and gloo for CPU ones: with
    launch.sharding=fsdp_offload the gradients that clipping all-reduces are CPU tensors, as are the logged loss
    statistics, and a plain NCCL group refuses them ("No backend type associated with device type cpu",
    pytorch/pytorch#148532; accelerate adds gloo only for its own FSDP plugin with offload). On CPU accelerate
    starts gloo itself; a process no launcher started (no LOCAL_RANK, as accelerate decides) starts no group, and
    a backend named there would make accelerate ask for one that does not exist."""
    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1
    return [InitProcessGroupKwargs(backend="cuda:nccl,cpu:gloo")] if device() == "cuda" and launched else []


class PPOTrainer:
    def __init__(self, alg, base: ModelRef, model_cfg, prompts: Dataset, reward_model, out_dir: Path,
                 log: Callable[[dict, int], None], seed: int, max_prompt_tokens: int = 1024, sharding: str = "none"):
        self.alg, self.out_dir, self.log, self.seed, self.model_dtype = alg, Path(out_dir), log, seed, model_cfg.dtype
        check_ppo_sharding(sharding)
        # cpu=True: several CPU processes form a gloo group; on GPUs NCCL with gloo for CPU tensors (process_group)
        self.accelerator = Accelerator(cpu=device() == "cpu", kwargs_handlers=process_group())
        self.sharded = sharding != "none"
        if self.sharded and not torch.distributed.is_initialized():  # one process may shard within a process group
            # it started (FSDP2's code path on one GPU: python -m harness.acceptance)
            raise ConfigError(f"launch.sharding={sharding} shards over several processes, but this run has one; set "
                              "launch.processes to the GPUs of the job (or launch.sharding=none)")
        world = self.accelerator.num_processes
        self.batch = plan(alg.effective_batch_size, alg.per_device_batch_size, world)
        check_sizes(alg, world)
        self.local_rollout = alg.rollout_batch_size // world
        self.local_minibatch = alg.effective_batch_size // world
        # each process samples with its own seed derived from the run's (seed + process index; the first process keeps
        # the run's seed): EasyLM splits one JAX key over its devices, so no two draw the same noise
        set_seed(seed, device_specific=True)

        self.tok = load_tokenizer(base, model_cfg.chat_template)
        self.tok.padding_side = "left"
        # Frozen models in model.dtype; trained ones (policy, value) in fp32 with model.dtype compute (self.compute).
        load = self.loader(sharding, model_cfg.dtype, alg.activation_checkpointing)
        read_rm = lambda dtype, on: load_reward_model(reward_model.ref, dtype, on)  # noqa: E731
        read_base = lambda dtype, on: load_causal_lm(base, dtype, on)  # noqa: E731
        self.scorer = RewardScorer(load(read_rm, trained=False), load_tokenizer(reward_model.ref, reward_model.chat_template),
                                   alg.per_device_batch_size)
        if alg.value_from_reward_model:
            if not self.scorer.shares_tokenizer(self.tok):
                raise ConfigError("algorithm.value_from_reward_model=true needs a reward model with the policy's "
                                  f"tokenizer and chat template, but {reward_model.ref.path} has different ones; set "
                                  "algorithm.value_from_reward_model=false (value model from the policy)")
            value = load(read_rm, trained=True)
        else:
            value = load(lambda dtype, _: AutoModelForSequenceClassification.from_pretrained(
                base.path, revision=base.revision, num_labels=1, dtype=torch_dtype(dtype)), trained=True)
        policy = load(read_base, trained=True)
        self.ref = load(read_base, trained=False)
        self.compute_dtype = model_cfg.dtype
        prompts, self.query_ids = keep_short_prompts(prompts, self.tok, prompt_budget(alg, max_prompt_tokens),
                                                     alg.query_bos)
        self.prompts = [r["prompt"] for r in prompts]
        self.iterations = self.count_iterations(len(self.query_ids))
        updates = alg.ppo_epochs * (alg.rollout_batch_size // alg.effective_batch_size)
        self.total_steps = self.iterations * updates

        model = PolicyAndValue(policy, value)
        optimizer = torch.optim.AdamW(model.parameters(), lr=alg.learning_rate, betas=(alg.adam_beta1, alg.adam_beta2),
                                      weight_decay=alg.weight_decay)
        self.scheduler = get_scheduler(alg.lr_scheduler, optimizer, num_warmup_steps=math.ceil(alg.warmup_ratio * self.total_steps),
                                       num_training_steps=self.total_steps)
        if self.sharded:
            self.model, self.optimizer = model, optimizer
        else:
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
            self.accelerator.register_for_checkpointing(self.scheduler)
            dev = self.accelerator.device
            self.ref.to(dev)
            self.scorer.model.to(dev)
        self.generation = sampling_config(alg, self.tok)
        # the checkpoint's own generation config is set aside while PPO samples, and saved with the trained policy
        self.checkpoint_generation, policy.generation_config = policy.generation_config, self.generation
        # what samples the rollouts (algorithm.rollout_backend): generate on the policy, or a colocated vLLM engine
        self.engine = rollout.engine(alg, base, model_cfg.dtype, policy, self.generation, self.accelerator.device,
                                     self.local_rollout, seed)
        self.iteration, self.global_step, self.history = 0, 0, []

    def compute(self):
        """Forward passes in model.dtype (autocast) over fp32 trainable weights: mixed precision, not pure bf16."""
        return autocast(self.compute_dtype, self.accelerator.device.type)

    def loader(self, sharding: str, dtype: str, checkpointing: bool):
        """load(read, trained) -> model, where read(dtype name, device or None) reads a checkpoint; trained models in
        fp32 (the optimiser's master weights), frozen ones in the run's dtype. Unsharded: the whole model on this
        process's device. Sharded (harness.train.fsdp): rank 0 reads it into CPU memory and every process keeps its
        shard, gathered for compute in the run's dtype (FSDP2 mixed precision)."""
        compute = torch_dtype(dtype)

        def prepare(model, trained: bool):
            no_dropout(model)
            if not trained:
                model.eval().requires_grad_(False)
            elif checkpointing:  # recompute each decoder layer's activations in backward
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

        def load(read, trained: bool):
            read_dtype = TRAINABLE_DTYPE if trained else dtype
            if not self.sharded:
                model = read(read_dtype, None)
                prepare(model, trained)
                return model
            return fsdp.load_sharded(lambda: read(read_dtype, "cpu"), lambda m: prepare(m, trained),
                                     param_dtype=compute if trained and compute != torch.float32 else None,
                                     offload=sharding == "fsdp_offload", frozen=not trained)

        return load

    # --------------------------------------------------------------------------------------------- data
    def count_iterations(self, n_prompts: int) -> int:
        alg = self.alg
        iterations = alg.max_steps if alg.max_steps > 0 else int(alg.epochs * n_prompts // alg.rollout_batch_size)
        if iterations < 1:
            raise ConfigError(f"{n_prompts} prompts make no rollout batch of algorithm.rollout_batch_size="
                              f"{alg.rollout_batch_size} in algorithm.epochs={alg.epochs}; use more prompts or a smaller batch")
        return iterations

    def batch_indices(self, iteration: int) -> list[int]:
        """This process's prompts for an iteration: consecutive seeded permutations of all prompts (one per pass)."""
        n, size = len(self.query_ids), self.alg.rollout_batch_size
        start = iteration * size
        order = []
        for rep in range(start // n, (start + size - 1) // n + 1):
            order += torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + rep)).tolist()
        first = start - (start // n) * n
        rows = order[first : first + size]
        acc = self.accelerator
        return rows[acc.process_index :: acc.num_processes]

    def left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return rollout.left_pad(rows, self.tok.pad_token_id, self.accelerator.device)

    # --------------------------------------------------------------------------------------------- rollout
    @torch.no_grad()
    def rollout(self, rows: list[int]) -> Rollout:
        prompts = [self.query_ids[i] for i in rows]
        query, query_mask = self.left_pad(prompts)
        policy = self.accelerator.unwrap_model(self.model).policy
        policy.eval()
        self.engine.sync(policy)  # the weights of the last update reach the engine (vllm; hf samples the policy itself)
        responses = self.engine.sample(prompts, rollout.request_seeds(self.seed, self.iteration, rows))
        batch = Rollout(query, query_mask, *rollout.pad_responses(responses, self.tok.pad_token_id,
                                                                   self.tok.eos_token_id, query.device))
        self.forward_rollout(batch)
        lengths = batch.mask.sum(1).tolist()
        response_ids = [batch.response[i, : lengths[i]].tolist() for i in range(len(rows))]
        batch.rm_scores = self.scorer.score_responses([self.prompts[i] for i in rows], [self.query_ids[i] for i in rows],
                                                      response_ids, batch.ended.tolist(), self.tok).to(query.device)
        policy.train()
        return batch

    def forward_rollout(self, b: Rollout) -> None:
        """Old log-probs, entropy and values under the current policy, and reference log-probs."""
        b.logprobs, b.values, b.entropy, b.ref_logprobs = self.forward_rows(b, torch.arange(len(b.query)), reference=True)

    @torch.no_grad()
    def forward_rows(self, b: Rollout, index: torch.Tensor, reference: bool = False) -> tuple:
        """Log-probs, values and sampling entropy of rows `index` under the current policy and value model (in
        length-grouped micro-batches, harness.train.length_groups), and the reference's log-probs when `reference`.
        Positions past a row's micro-batch are 0 (outside its mask)."""
        lp, values, entropy, ref_lp = [], [], [], []
        order = length_groups.longest_first(b.mask[index].sum(1))
        full = lambda t: torch.nn.functional.pad(t, (0, b.response.shape[1] - t.shape[1]))  # noqa: E731
        for s in range(0, len(index), self.batch.per_device):
            m = b.micro(index[order[s : s + self.batch.per_device]])
            ids, attn, pos = m.inputs()
            q = m.query.shape[1]
            logits, vals = self.model(ids, attn, pos)
            logits = response_slice(logits, q).float()
            lp.append(full(selective_log_softmax(self.logprob_logits(logits), m.response)))
            entropy.append(full(entropy_from_logits(logits / self.alg.temperature)))
            values.append(full(response_slice(vals, q).float()))
            if reference:
                ref_logits = self.ref(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).logits
                ref_lp.append(full(selective_log_softmax(self.logprob_logits(response_slice(ref_logits, q).float()), m.response)))
        back = torch.argsort(order)  # rows in the order of `index`
        return torch.cat(lp)[back], torch.cat(values)[back], torch.cat(entropy)[back], torch.cat(ref_lp)[back] if reference else None

    def logprob_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits PPO's log-probs (ratio, KL penalty) are taken from: raw (the paper's code) or divided by the
        sampling temperature (algorithm.logprobs_at_temperature, TRL / open-instruct)."""
        return logits / self.alg.temperature if self.alg.logprobs_at_temperature else logits

    def advantages(self, b: Rollout) -> dict:
        alg, mask = self.alg, b.mask.float()
        scores = b.rm_scores
        if alg.normalize_reward:
            scores = (scores - scores.mean()) / (scores.std() + 1e-8) if len(scores) > 1 else scores - scores.mean()
        scores = eos_trick(scores, b.ended, alg.missing_eos_penalty)
        rewards, kl = per_token_rewards(scores, b.logprobs, b.ref_logprobs, mask, alg.kl_coef)
        if alg.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False, sum_over_processes=self.sum_over_processes)
        b.advantages, b.returns = gae(rewards, b.values, mask, alg.gamma, alg.lam)
        if alg.whiten_advantages:  # over the whole minibatch (or rollout batch): every process's rows
            b.advantages = masked_whiten(b.advantages, mask, sum_over_processes=self.sum_over_processes)
        kl_seq = kl.sum(1)
        return {"objective/rm_score": b.rm_scores.mean(), "objective/score": scores.mean(), "objective/kl": kl_seq.mean(),
                "objective/non_score_reward": -alg.kl_coef * kl_seq.mean(),
                "objective/rlhf_reward": (scores - alg.kl_coef * kl_seq).mean(),
                "objective/entropy": masked_mean(b.entropy, mask), "val/response_length": mask.sum(1).mean(),
                "val/eos_fraction": b.ended.float().mean()}

    def sum_over_processes(self, t: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(t, "sum")

    # --------------------------------------------------------------------------------------------- updates
    def update(self, b: Rollout, iteration: int) -> dict:
        alg = self.alg
        stats = {k: [] for k in STATS}
        gen = torch.Generator().manual_seed(self.seed * 100_003 + iteration)
        for _ in range(alg.ppo_epochs):
            perm = torch.randperm(len(b.query), generator=gen)
            for start in range(0, len(perm), self.local_minibatch):
                minibatch = perm[start : start + self.local_minibatch]
                if alg.recompute_per_minibatch:
                    self.refresh(b, minibatch)
                for key, v in (self.backward_minibatch(b, minibatch) | self.step()).items():
                    stats.setdefault(key, []).append(v)
        return {k: torch.stack(v).mean() for k, v in stats.items()}

    def refresh(self, b: Rollout, minibatch: torch.Tensor) -> None:
        """The paper's code before every minibatch step (EasyLM llama_train_ppo.py ppo_forward_backward): old
        log-probs and values under the current parameters, then the minibatch's KL-penalised rewards and advantages,
        whitened over the minibatch (every process's rows of it). The ratio starts at 1 and both clips are inert."""
        with self.compute():
            lp, values, _, _ = self.forward_rows(b, minibatch)
        b.logprobs[minibatch], b.values[minibatch] = lp, values
        part = b.select(minibatch)
        self.advantages(part)
        b.advantages[minibatch], b.returns[minibatch] = part.advantages, part.returns

    def backward_minibatch(self, b: Rollout, minibatch: torch.Tensor, micro_size: int | None = None) -> dict:
        """Accumulate the gradients of one minibatch's loss (this process's rows), in micro-batches of `micro_size`
        (default: per_device_batch_size). Returns the minibatch's loss statistics."""
        alg, acc = self.alg, self.accelerator
        size = micro_size or self.batch.per_device
        minibatch = minibatch[length_groups.longest_first(b.mask[minibatch].sum(1))]  # length-grouped micro-batches
        micro = [minibatch[i : i + size] for i in range(0, len(minibatch), size)]
        tokens = loss_normaliser(b.mask[minibatch], acc)
        totals = {k: torch.zeros(()) for k in STATS}
        for k, rows in enumerate(micro):
            # DDP all-reduces once, after the last micro-batch. Sharded, every micro-batch reduce-scatters into the
            # sharded gradient: under set_requires_gradient_sync(False) FSDP2 would hold every rank's whole
            # unsharded gradient, in fp32, until the last (torch 2.13 fsdp/_fully_shard/_fsdp_param_group.py
            # post_backward). Sums of per-micro-batch averages are the average of the sums: the same gradient.
            last = k == len(micro) - 1
            sync = contextlib.nullcontext() if last or self.sharded else acc.no_sync(self.model)
            with sync:
                m = b.micro(rows)  # its own longest query and response, not the rollout's
                ids, attn, pos = m.inputs()
                with self.compute():
                    logits, vals = self.model(ids, attn, pos)
                q, mask = m.query.shape[1], m.mask.float()
                new_lp = selective_log_softmax(self.logprob_logits(response_slice(logits, q).float()), m.response)
                pg, clipfrac, approxkl = policy_loss(new_lp, m.logprobs, m.advantages, mask, alg.cliprange, tokens)
                vf, vclipfrac = value_loss(response_slice(vals, q).float(), m.values, m.returns, mask,
                                           alg.cliprange_value, tokens)
                acc.backward(pg + alg.vf_coef * vf)
            for key, v in zip(STATS, (pg, vf, clipfrac, approxkl, vclipfrac)):
                totals[key] = totals[key] + v.detach().cpu()
        return totals  # this process's share; train() averages over processes

    def clip_gradients(self) -> dict:
        """Policy and value gradients clipped to max_grad_norm each (the paper's code: two optimisers, each with
        clip_by_global_norm, EasyLM llama_train_ppo.py + optimizers.py), or as one vector
        (algorithm.separate_grad_clipping=false, TRL). Returns each group's norm before clipping (logged)."""
        model = self.accelerator.unwrap_model(self.model)
        groups = ({"policy/grad_norm": model.policy.parameters(), "val/grad_norm": model.value.parameters()}
                  if self.alg.separate_grad_clipping else {"grad_norm": self.model.parameters()})
        norms = {name: self.accelerator.clip_grad_norm_(params, self.alg.max_grad_norm) for name, params in groups.items()}
        # sharded: a DTensor; full_tensor() is the whole gradient's norm, on every rank
        return {name: (n.full_tensor() if isinstance(n, DTensor) else n).detach().float().cpu() for name, n in norms.items()}

    def step(self) -> dict:
        """One optimiser step on the accumulated gradients; returns the gradient norms before clipping."""
        norms = self.clip_gradients()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.global_step += 1
        STEPS_THIS_PROCESS["count"] += 1
        return norms

    # --------------------------------------------------------------------------------------------- loop
    def train(self) -> dict:
        resumed = self.resume()
        while self.iteration < self.iterations:
            with self.compute():
                batch = self.rollout(self.batch_indices(self.iteration))
            metrics = self.advantages(batch) | self.update(batch, self.iteration)
            metrics = {k: float(self.accelerator.reduce(v.detach().float().reshape(1), "mean")) for k, v in metrics.items()}
            self.iteration += 1
            metrics |= {"lr": self.scheduler.get_last_lr()[0], "global_step": self.global_step}
            self.history.append({"step": self.iteration, **metrics})
            if self.accelerator.is_main_process:
                self.log(metrics, self.iteration)
            if self.iteration % self.alg.save_steps == 0 and self.iteration < self.iterations:
                self.save_checkpoint()
        self.save_final()
        first, last = self.history[0], self.history[-1]
        return {"iterations": self.iterations, "global_step": self.global_step, "resumed_from": resumed,
                "prompts": len(self.query_ids), "score_first": first["objective/score"], "score_last": last["objective/score"],
                "rm_score_first": first["objective/rm_score"], "rm_score_last": last["objective/rm_score"],
                "kl_last": last["objective/kl"], "reward_model_shares_tokenizer": self.scorer.shares_tokenizer(self.tok),
                "rollout_batch_size": self.alg.rollout_batch_size, "effective_batch_size": self.batch.effective,
                "per_device_batch_size": self.batch.per_device, "gradient_accumulation_steps": self.batch.accumulation,
                "processes": self.batch.processes}

    def save_checkpoint(self) -> None:
        root = self.out_dir / "checkpoints"
        path = root / f"checkpoint-{self.iteration}"
        if self.sharded:
            fsdp.save_state(path, self.model, self.optimizer, self.scheduler)
        else:
            self.accelerator.save_state(str(path), safe_serialization=False)
        if self.accelerator.is_main_process:
            state = {"iteration": self.iteration, "global_step": self.global_step, "log_history": self.history}
            write_atomic(path / "trainer_state.json", json.dumps(state))  # last: the checkpoint is whole
            done = sorted((p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                          key=lambda p: int(p.name.split("-")[-1]))
            for old in done[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def resume(self) -> str | None:
        path = latest_checkpoint(self.out_dir / "checkpoints")
        if path is None:
            return None
        if self.sharded:
            fsdp.load_state(path, self.model, self.optimizer, self.scheduler)
        else:
            self.accelerator.load_state(path)
        state = json.loads((Path(path) / "trainer_state.json").read_text())
        self.iteration, self.global_step, self.history = state["iteration"], state["global_step"], state["log_history"]
        print(f"[harness] PPO resumes from {path} (iteration {self.iteration}/{self.iterations}, step {self.global_step})")
        return path

    def save_final(self) -> None:
        policy = self.accelerator.unwrap_model(self.model).policy
        policy.generation_config = self.checkpoint_generation
        if self.sharded:  # every rank sends its shards; rank 0 writes the whole model (fp32, as unsharded)
            fsdp.save_pretrained(policy, self.out_dir / "model")
        if self.accelerator.is_main_process:
            if not self.sharded:
                policy.save_pretrained(self.out_dir / "model")
            self.tok.padding_side = "right"
            self.tok.save_pretrained(self.out_dir / "model")
            (self.out_dir / "log_history.json").write_text(json.dumps(self.history, indent=1))
        policy.generation_config = self.generation
        self.accelerator.wait_for_everyone()


def query_ids(tok, messages: list[dict], bos: bool = False) -> list[int]:
    """A prompt's token ids as EasyLM's PPO read it (hamishivi/EasyLM@dbf2212 EasyLM/data.py TuluPromptDataset):
    every message stripped, the chat template's rendering, and (bos=false, algorithm.query_bos) without the
    template's <s>, as EasyLM encoded its prompt text with add_special_tokens=False and rendered no <s>."""
    ids = tok(tok.apply_chat_template(stripped(messages), add_generation_prompt=True, tokenize=False),
              add_special_tokens=False)["input_ids"]
    return ids[1:] if not bos and tok.bos_token_id is not None and ids[:1] == [tok.bos_token_id] else ids


def keep_short_prompts(prompts: Dataset, tok, max_tokens: int, bos: bool = False) -> tuple[Dataset, list[list[int]]]:
    """Prompts whose query (query_ids) fits `max_tokens` (protocol: longer ones are dropped), and their token ids."""
    ids = [query_ids(tok, r["prompt"], bos) for r in prompts]
    keep = [i for i, q in enumerate(ids) if len(q) <= max_tokens]
    if not keep:
        raise ConfigError(f"all {len(ids)} prompts are longer than {max_tokens} tokens (prompts.max_prompt_tokens, and "
                          "algorithm.max_length minus algorithm.max_new_tokens)")
    return prompts.select(keep), [ids[i] for i in keep]


def prompt_budget(alg, max_prompt_tokens: int) -> int:
    """Longest prompt kept: the prompt set's limit (protocol: 1024), and room for a full response in max_length."""
    return min(max_prompt_tokens, alg.max_length - alg.max_new_tokens)


def check_sizes(alg, processes: int) -> None:
    if alg.minibatch_size != alg.effective_batch_size:
        raise ConfigError(f"algorithm.minibatch_size={alg.minibatch_size} differs from algorithm.effective_batch_size="
                          f"{alg.effective_batch_size}: they are the same number (examples per optimiser step); set "
                          "effective_batch_size only")
    if alg.rollout_batch_size % alg.effective_batch_size:
        raise ConfigError(f"algorithm.rollout_batch_size={alg.rollout_batch_size} is not a multiple of "
                          f"algorithm.effective_batch_size={alg.effective_batch_size} (the minibatch)")
    if alg.rollout_batch_size % processes:
        raise ConfigError(f"algorithm.rollout_batch_size={alg.rollout_batch_size} is not divisible by the {processes} "
                          "training processes")


def train(alg, base: ModelRef, model_cfg, prompts: Dataset, reward_model, out_dir: Path, log: Callable[[dict, int], None],
          seed: int, max_prompt_tokens: int = 1024, sharding: str = "none") -> dict:
    """PPO from `base` against `reward_model` (harness.train.reward.RewardModel); `log(metrics, iteration)` each
    iteration. Resumes from the newest checkpoint in `out_dir`."""
    return PPOTrainer(alg, base, model_cfg, prompts, reward_model, out_dir, log, seed, max_prompt_tokens, sharding).train()
