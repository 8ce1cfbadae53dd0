"""Rollout engines: what samples PPO's responses (`algorithm.rollout_backend`), how the policy's weights reach it after
every update, GRPO's vLLM arguments for TRL, and how fast each engine samples.

    python -m harness algorithm=ppo reward_model=tiny                                           # hf, CPU
    python -m harness algorithm=ppo model=tulu2_13b reward_model=uf_13b prompts=uf algorithm.rollout_backend=vllm

An engine only samples: one response per prompt, as token ids through its first EOS. The trainer recomputes every
log-prob itself (the paper's ratio and KL penalty are the trainer's), so nothing the engine computes enters the loss.

- `HFEngine` (`hf`, the default): transformers `generate` on the trained policy itself, in chunks of
  `algorithm.generation_batch_size` left-padded prompts, drawing from the process's torch RNG (saved in checkpoints);
  under FSDP2 the policy is gathered once per rollout (harness.train.fsdp.gathered).
- `VLLMEngine` (`vllm`): a vLLM engine inside every training process (vLLM's `external_launcher` backend, tensor
  parallel 1: TRL's colocate pattern), built once from the base checkpoint in model.dtype. Before each rollout the
  policy's current weights are pushed into it parameter by parameter (a sharded parameter is gathered whole with
  DTensor.full_tensor(), cast to model.dtype, loaded and dropped: never a second whole model in memory) and its
  prefix cache is reset; it samples all of the process's prompts at once, each request from its own seed (run seed,
  iteration, prompt), so a resumed run, or one on another number of processes, draws the uninterrupted run's random
  numbers (vLLM's logits may still differ by rounding with what shares a batch); with `algorithm.vllm_sleep` it then
  sleeps (level 2: weights and KV cache freed) while the models train.

Both sample with exactly the recipe's sampler (`Sampling`): temperature, top-k, top-p, at most max_new_tokens, stopping
at the policy tokenizer's EOS and nowhere else (vLLM: `ignore_eos` with that EOS as the one stop token, so extra EOS
ids in a checkpoint's generation_config.json stop neither engine), no penalty or other logits processor.

GRPO samples through TRL 1.16's own vLLM path instead (`trl_vllm_args`). `throughput` times both engines on the same
prompts and model (benchmarks/rollout_throughput.py; the GPU acceptance command's rollout row).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.distributed.tensor import DTensor
from transformers import GenerationConfig

from harness.config.errors import ConfigError
from harness.models import ModelRef, load_causal_lm, torch_dtype
from harness.train import fsdp

# TRL 1.16 (trl/generation/vllm_generation.py, colocate mode) caps the engine's batched tokens at 4096: vLLM's memory
# profiler, run with its default (32768), sees too little memory beside a training process.
MAX_BATCHED_TOKENS = 4096


def require_vllm(what: str = "algorithm.rollout_backend=vllm", instead: str = "set algorithm.rollout_backend=hf") -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f'{what} samples with vLLM, which is not installed: it needs a CUDA GPU and the vllm extra '
                          '(pip install -e ".[vllm]" on a GPU machine)' + (f"; or {instead}" if instead else ""))


# ------------------------------------------------------------------------------------------------- the sampler
@dataclass(frozen=True)
class Sampling:
    """The recipe's sampler, the same for every engine (harness/config/schema.py, PPOConfig)."""

    temperature: float
    top_k: int  # 0: off, in transformers and vLLM alike
    top_p: float
    max_new_tokens: int
    eos_id: int

    @classmethod
    def of(cls, alg, eos_id: int) -> Sampling:
        return cls(alg.temperature, alg.top_k, alg.top_p, alg.max_new_tokens, eos_id)

    def generation_config(self, pad_id: int) -> GenerationConfig:
        """transformers: temperature, top-k, top-p and nothing else. Every other logits processor is off: explicitly
        where "off" is a value, and, where it is None (min_p, suppress_tokens, bad_words_ids, ...), because PPO makes
        this config the policy's own generation_config (transformers fills fields left None from it: a repetition
        penalty or n-gram block from the checkpoint's generation_config.json would make the samples off-policy, since
        the log-probs never apply them)."""
        return GenerationConfig(do_sample=True, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                                max_new_tokens=self.max_new_tokens, min_new_tokens=0, num_beams=1,
                                typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, repetition_penalty=1.0,
                                encoder_repetition_penalty=1.0, no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0,
                                renormalize_logits=False, remove_invalid_values=False,
                                eos_token_id=self.eos_id, pad_token_id=pad_id)

    def sampling_params(self, seed: int):
        """vLLM: the same sampler, every penalty at its neutral value, stopping at the policy's EOS only, token ids
        only (no detokenizing), drawn from `seed`."""
        from vllm import SamplingParams

        return SamplingParams(n=1, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=0.0,
                              repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                              max_tokens=self.max_new_tokens, min_tokens=0, ignore_eos=True,
                              stop_token_ids=[self.eos_id], seed=seed, detokenize=False)


def request_seeds(seed: int, iteration: int, rows: list[int]) -> list[int]:
    """One seed per prompt of a rollout, from the run's seed, the iteration and the prompt's index in the prompt set:
    the same on every process count and after a resume."""
    return [((seed * 1_000_003 + iteration) * 1_000_003 + row) % 2**63 for row in rows]


# ------------------------------------------------------------------------------------------------- token lists
def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts left-padded to the longest, and their attention mask."""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, longest - len(r) :] = torch.tensor(r)
        mask[i, longest - len(r) :] = 1
    return ids.to(device), mask.to(device)


def through_eos(tokens: list[int], eos_id: int) -> list[int]:
    """A response up to and including its first EOS (all of it when it never ended)."""
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens


def pad_responses(responses: list[list[int]], pad_id: int, eos_id: int, device) -> tuple[torch.Tensor, ...]:
    """Responses right-padded to the longest: (token ids, mask of real tokens, whether each ended with EOS)."""
    width = max(len(r) for r in responses)
    ids = torch.full((len(responses), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(responses):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    ended = torch.tensor([len(r) > 0 and r[-1] == eos_id for r in responses])
    return ids.to(device), mask.to(device), ended.to(device)


# ------------------------------------------------------------------------------------------------- engines
class HFEngine:
    """transformers `generate` on the trained policy itself."""

    def __init__(self, policy, generation: GenerationConfig, pad_id: int, batch_size: int, device):
        self.policy, self.generation, self.pad_id, self.batch_size, self.device = policy, generation, pad_id, batch_size, device

    def sync(self, policy) -> None:
        """Nothing to push: generate runs on the policy's own (current) weights."""

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], seeds: list[int] | None = None) -> list[list[int]]:
        ids, mask = left_pad(prompts, self.pad_id, self.device)
        eos, out = self.generation.eos_token_id, []
        with fsdp.gathered(self.policy):  # sharded: the policy gathered once for all of generate's forwards
            for s in range(0, len(prompts), self.batch_size):
                part = slice(s, s + self.batch_size)
                generated = self.policy.generate(input_ids=ids[part], attention_mask=mask[part],
                                                 generation_config=self.generation)
                out += [through_eos(r, eos) for r in generated[:, ids.shape[1] :].tolist()]
        return out


def full_parameters(model: torch.nn.Module, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter of `model` whole, one at a time, under its HF name, in `dtype`. A sharded (FSDP2) parameter is
    gathered from its shards (collective: every process iterates the same parameters), an offloaded one on this
    process's GPU; only the parameter being yielded is ever gathered."""
    for name, param in model.named_parameters():
        tensor = param.detach()
        if isinstance(tensor, DTensor):
            if tensor.device.type == "cpu" and torch.cuda.is_available():
                tensor = tensor.to(torch.cuda.current_device())
            tensor = tensor.full_tensor()
        yield name, tensor.to(dtype)


def launcher_env() -> None:
    """The torchrun variables vLLM's external_launcher reads, for a run training in its own single process (rank 0 of
    1, a free local port), as TRL's colocate mode sets them; a launched process has them already."""
    from trl.trainer.utils import ensure_master_addr_port

    for key in ("RANK", "LOCAL_RANK"):
        os.environ.setdefault(key, "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    ensure_master_addr_port()


class VLLMEngine:
    """A vLLM engine in this process, colocated with the trainer (asleep while it trains when `sleep`)."""

    def __init__(self, model: ModelRef, dtype: str, sampling: Sampling, max_model_len: int, max_num_seqs: int,
                 gpu_memory_utilization: float, sleep: bool, seed: int):
        require_vllm()
        from vllm import LLM

        launcher_env()
        self.sampling, self.sleeps, self.dtype = sampling, sleep, torch_dtype(dtype)
        self.llm = LLM(model=model.path, revision=model.revision, dtype=dtype, seed=seed, skip_tokenizer_init=True,
                       tensor_parallel_size=1, distributed_executor_backend="external_launcher",
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       max_num_seqs=max_num_seqs, max_num_batched_tokens=MAX_BATCHED_TOKENS, enable_sleep_mode=sleep)
        if sleep:  # nothing to sample until the first rollout, which loads the policy's weights anyway
            self.llm.sleep(level=2)

    def sync(self, policy) -> None:
        """The policy's current weights into the engine (every process calls it: gathering shards is collective)."""
        if self.sleeps:
            self.llm.wake_up(tags=["weights"])
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        for name, tensor in full_parameters(policy, self.dtype):
            model.load_weights(weights=[(name, tensor)])
        self.llm.reset_prefix_cache()  # cached prompt states were computed with the old weights

    def sample(self, prompts: list[list[int]], seeds: list[int]) -> list[list[int]]:
        if self.sleeps:
            self.llm.wake_up(tags=["kv_cache"])
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts],
                                    [self.sampling.sampling_params(s) for s in seeds], use_tqdm=False)
        if self.sleeps:
            self.llm.sleep(level=2)
        return [through_eos(list(o.outputs[0].token_ids), self.sampling.eos_id) for o in outputs]


def engine(alg, base: ModelRef, dtype: str, policy, generation: GenerationConfig, device, max_num_seqs: int, seed: int):
    """The engine `algorithm.rollout_backend` names, for a PPO trainer: its policy, sampler (`generation`, from
    `Sampling.generation_config`), device, and prompts per process."""
    if alg.rollout_backend == "vllm":
        sampling = Sampling.of(alg, generation.eos_token_id)
        return VLLMEngine(base, dtype, sampling, alg.max_length, max_num_seqs, alg.vllm_gpu_memory_utilization,
                          alg.vllm_sleep, seed)
    return HFEngine(policy, generation, generation.pad_token_id, alg.generation_batch_size, device)


def trl_vllm_args(alg) -> dict:
    """GRPOConfig's arguments for `algorithm.rollout_backend`: TRL 1.16's own vLLM path in colocate mode (an engine in
    every training process, sleeping while it trains when `vllm_sleep`, fed the policy's weights after every optimiser
    step), the rest of TRL's defaults kept, its importance-sampling correction of the vLLM/trainer log-prob gap
    included (trl/trainer/grpo_config.py)."""
    if alg.rollout_backend != "vllm":
        return {}
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_tensor_parallel_size": 1,
            "vllm_gpu_memory_utilization": alg.vllm_gpu_memory_utilization, "vllm_enable_sleep_mode": alg.vllm_sleep,
            "vllm_max_model_length": alg.max_length}


# ------------------------------------------------------------------------------------------------- throughput
def timed_sample(engine, prompts: list[list[int]]) -> tuple[int, float]:
    """(response tokens sampled, seconds) of one call, after a warm-up call on the first prompts."""
    seeds = list(range(len(prompts)))
    engine.sample(prompts[:2], seeds[:2])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = sum(len(r) for r in engine.sample(prompts, seeds))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return tokens, time.perf_counter() - start


def throughput(model: ModelRef, dtype: str, prompts: list[list[int]], sampling: Sampling, pad_id: int,
               hf_batch_size: int, gpu_memory_utilization: float = 0.5, with_vllm: bool = True) -> dict:
    """Response tokens per second of HF generate (chunks of `hf_batch_size`, as PPO's `hf` backend samples) and of
    vLLM (`VLLMEngine`, all prompts at once) sampling the same prompts with the same model and sampler in this process,
    one after the other, and their ratio (vllm / hf). Meaningful only on a GPU with vLLM installed; `with_vllm=False`
    times HF alone (the vLLM fields are None)."""
    policy = load_causal_lm(model, dtype).eval()
    hf = HFEngine(policy, sampling.generation_config(pad_id), pad_id, hf_batch_size, policy.device)
    hf_tokens, hf_s = timed_sample(hf, prompts)
    result = {"prompts": len(prompts), "hf_tokens": hf_tokens, "hf_tokens_per_s": hf_tokens / hf_s,
              "vllm_tokens": None, "vllm_tokens_per_s": None, "ratio": None}
    del hf, policy
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if with_vllm:
        engine = VLLMEngine(model, dtype, sampling, max(len(p) for p in prompts) + sampling.max_new_tokens, len(prompts),
                            gpu_memory_utilization, sleep=False, seed=0)
        vllm_tokens, vllm_s = timed_sample(engine, prompts)
        result |= {"vllm_tokens": vllm_tokens, "vllm_tokens_per_s": vllm_tokens / vllm_s,
                   "ratio": (vllm_tokens / vllm_s) / result["hf_tokens_per_s"]}
    return result
