"""vllm.entrypoints.llm.LLM (vLLM 0.30.0), faked on transformers (what it fakes and what not: vllm/__init__.py).

Every engine built in a process is kept in `LLM.engines`, and each keeps `events`: ("init", kwargs), ("sleep",
level), ("wake_up", tags), ("load", name, shape, dtype), ("reset_prefix_cache",), ("generate", prompts, params,
outputs) in order, for tests to read.
"""

from __future__ import annotations

import torch

from vllm.engine.arg_utils import ENGINE_ARGS
from vllm.logprobs import Logprob
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

SLEEP_TAGS = ("weights", "kv_cache")
DTYPES = {"float32": torch.float32, "float": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "half": torch.float16}


class Model:
    """The model runner's model: vLLM's `load_weights(weights)` over HF parameter names."""

    def __init__(self, hf, engine: LLM):
        self.hf, self.engine = hf, engine

    def load_weights(self, weights) -> set[str]:
        if "weights" in self.engine.asleep:  # vLLM writes into unmapped memory (TRL issue 5142): refuse
            raise RuntimeError("fake vLLM: load_weights while the weights sleep; wake_up(tags=['weights']) first")
        params = dict(self.hf.named_parameters(remove_duplicate=False))
        loaded = set()
        for name, tensor in weights:
            if name not in params:
                raise KeyError(f"fake vLLM: {type(self.hf).__name__} has no parameter {name!r}")
            if type(tensor) is not torch.Tensor:  # a DTensor shard is not a weight vLLM can load
                raise TypeError(f"fake vLLM: {name} arrived as {type(tensor).__name__}, not a whole torch.Tensor")
            if tuple(tensor.shape) != tuple(params[name].shape):
                raise ValueError(f"fake vLLM: {name} has shape {tuple(tensor.shape)}, the model's is "
                                 f"{tuple(params[name].shape)}")
            with torch.no_grad():
                params[name].copy_(tensor)
            self.engine.events.append(("load", name, list(tensor.shape), str(tensor.dtype).removeprefix("torch.")))
            loaded.add(name)
        return loaded


class ModelRunner:
    def __init__(self, model: Model):
        self.model = model


class Worker:
    def __init__(self, runner: ModelRunner):
        self.model_runner = runner


class Executor:
    def __init__(self, worker: Worker):
        self.driver_worker = worker


class ModelConfig:
    def __init__(self, max_model_len: int, dtype: torch.dtype):
        self.max_model_len, self.dtype = max_model_len, dtype


class LLMEngine:
    def __init__(self, model_config: ModelConfig, executor: Executor):
        self.model_config, self.model_executor = model_config, executor

    def collective_rpc(self, method, timeout=None, args: tuple = (), kwargs: dict | None = None) -> list:
        worker = self.model_executor.driver_worker
        call = getattr(worker, method) if isinstance(method, str) else (lambda *a, **k: method(worker, *a, **k))
        return [call(*args, **(kwargs or {}))]

    def apply_model(self, func) -> list:
        return [func(self.model_executor.driver_worker.model_runner.model.hf)]


class LLM:
    engines: list[LLM] = []

    def __init__(self, model: str, *, runner="auto", convert="auto", tokenizer: str | None = None,
                 tokenizer_mode="auto", skip_tokenizer_init: bool = False, trust_remote_code: bool = False,
                 allowed_local_media_path: str = "", allowed_media_domains=None, tensor_parallel_size: int = 1,
                 dtype="auto", quantization=None, revision: str | None = None, tokenizer_revision: str | None = None,
                 chat_template=None, seed: int = 0, gpu_memory_utilization: float = 0.92, cpu_offload_gb: float = 0,
                 offload_group_size: int = 0, offload_num_in_group: int = 1, offload_prefetch_step: int = 1,
                 offload_params=None, enforce_eager: bool = False, enable_return_routed_experts: bool = False,
                 return_sampling_mask: bool = False, disable_custom_all_reduce: bool = False, hf_token=None,
                 hf_overrides=None, mm_processor_kwargs=None, pooler_config=None, structured_outputs_config=None,
                 profiler_config=None, attention_config=None, kv_cache_memory_bytes=None, compilation_config=None,
                 quantization_config=None, logits_processors=None, spec_method=None, spec_model=None,
                 spec_tokens=None, **kwargs) -> None:
        unknown = sorted(set(kwargs) - ENGINE_ARGS)
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {unknown[0]!r}")
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.kwargs = {"model": model, "tokenizer": tokenizer, "skip_tokenizer_init": skip_tokenizer_init,
                       "tensor_parallel_size": tensor_parallel_size, "dtype": dtype, "revision": revision,
                       "seed": seed, "gpu_memory_utilization": gpu_memory_utilization, **kwargs}
        self.events: list[tuple] = [("init", dict(self.kwargs))]
        config = AutoConfig.from_pretrained(model, revision=revision)
        if dtype == "auto":  # vLLM's _resolve_auto_dtype: the checkpoint's dtype, float32 downcast to bf16 on GPUs
            resolved = getattr(config, "dtype", None) or torch.float32
            resolved = torch.bfloat16 if resolved == torch.float32 else resolved
        else:
            resolved = dtype if isinstance(dtype, torch.dtype) else DTYPES[dtype]
        hf = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=resolved).eval()
        self.generation_defaults = hf.generation_config  # generation_config.json: read for its EOS ids only
        hf.generation_config = GenerationConfig()  # explicit SamplingParams alone decide how to sample
        self.tokenizer = None if skip_tokenizer_init else AutoTokenizer.from_pretrained(
            tokenizer or model, revision=tokenizer_revision or revision)
        max_len = kwargs.get("max_model_len") or config.max_position_embeddings
        self.max_num_seqs = kwargs.get("max_num_seqs") or 256
        self.logprobs_mode = kwargs.get("logprobs_mode") or "raw_logprobs"
        self.enable_sleep_mode = bool(kwargs.get("enable_sleep_mode"))
        self.asleep: set[str] = set()
        self.llm_engine = LLMEngine(ModelConfig(max_len, resolved), Executor(Worker(ModelRunner(Model(hf, self)))))
        LLM.engines.append(self)

    # --------------------------------------------------------------------------------------------- engine control
    @property
    def hf(self):
        return self.llm_engine.model_executor.driver_worker.model_runner.model.hf

    def get_tokenizer(self):
        return self.tokenizer

    def collective_rpc(self, method, timeout=None, args: tuple = (), kwargs: dict | None = None) -> list:
        return self.llm_engine.collective_rpc(method, timeout, args, kwargs)

    def apply_model(self, func) -> list:
        return self.llm_engine.apply_model(func)

    def reset_prefix_cache(self, reset_running_requests: bool = False, reset_connector: bool = False) -> bool:
        self.events.append(("reset_prefix_cache",))
        return True

    def sleep(self, level: int = 1, mode: str = "abort"):
        if not self.enable_sleep_mode:
            raise AssertionError("Sleep mode is not enabled in the model config")
        self.events.append(("sleep", level))
        if level == 2:  # weights discarded: whatever was in them is gone until loaded again
            with torch.no_grad():
                for p in self.hf.parameters():
                    p.fill_(float("nan"))
        self.asleep = set(SLEEP_TAGS)

    def wake_up(self, tags: list[str] | None = None):
        self.events.append(("wake_up", None if tags is None else list(tags)))
        self.asleep -= set(SLEEP_TAGS if tags is None else tags)

    # --------------------------------------------------------------------------------------------- sampling
    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
                 tokenization_kwargs=None, mm_processor_kwargs=None) -> list[RequestOutput]:
        if self.asleep:
            raise RuntimeError(f"fake vLLM: generate while asleep ({sorted(self.asleep)}); wake_up first")
        prompts = prompts if isinstance(prompts, (list, tuple)) else [prompts]
        ids = [self._token_ids(p) for p in prompts]
        params = sampling_params or SamplingParams()
        params = list(params) if isinstance(params, (list, tuple)) else [params] * len(ids)
        if len(params) != len(ids):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        rows = [(i, k) for i, p in enumerate(params) for k in range(p.n)]  # one row per output
        samples = {}
        for start in range(0, len(rows), self.max_num_seqs):
            chunk = rows[start : start + self.max_num_seqs]
            for group in _same_sampler(chunk, params):
                samples |= dict(zip(group, self._sample([ids[i] for i, _ in group], params[group[0][0]])))
        outputs = []
        for i, p in enumerate(params):
            outputs.append(RequestOutput(str(i), prompts[i] if isinstance(prompts[i], str) else None, ids[i], None,
                                         [samples[(i, k)] for k in range(p.n)], True))
        self.events.append(("generate", ids, params, [[list(o.token_ids) for o in r.outputs] for r in outputs]))
        return outputs

    def _token_ids(self, prompt) -> list[int]:
        if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            return list(prompt["prompt_token_ids"])
        if self.tokenizer is None:
            raise ValueError("fake vLLM: a text prompt needs the tokenizer (skip_tokenizer_init=False)")
        text = prompt["prompt"] if isinstance(prompt, dict) else prompt
        return self.tokenizer(text)["input_ids"]

    def _stops(self, p: SamplingParams) -> list[int]:
        """vLLM's stop rule: the tokenizer's EOS and generation_config.json's EOS ids unless ignore_eos, and
        stop_token_ids."""
        stops = list(p.stop_token_ids)
        if not p.ignore_eos:
            eos = self.generation_defaults.eos_token_id
            eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
            stops += ([self.tokenizer.eos_token_id] if self.tokenizer is not None else []) + eos
        return list(dict.fromkeys(s for s in stops if s is not None))

    @torch.no_grad()
    def _sample(self, prompts: list[list[int]], p: SamplingParams) -> list[CompletionOutput]:
        from transformers import GenerationConfig

        if p.presence_penalty or p.frequency_penalty or p.prompt_logprobs is not None or p.bad_words:
            raise NotImplementedError("fake vLLM: presence/frequency penalties, prompt log-probs and bad words")
        stops = self._stops(p)
        pad = stops[0] if stops else 0
        width = max(len(x) for x in prompts)
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in prompts])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts])
        greedy = p.temperature < 1e-5
        max_tokens = p.max_tokens or (self.llm_engine.model_config.max_model_len - width)
        config = GenerationConfig(do_sample=not greedy, temperature=1.0 if greedy else p.temperature, top_k=p.top_k,
                                  top_p=p.top_p, min_p=p.min_p or None, repetition_penalty=p.repetition_penalty,
                                  max_new_tokens=max_tokens, min_new_tokens=p.min_tokens, num_beams=1,
                                  eos_token_id=stops or None, pad_token_id=pad, return_dict_in_generate=True,
                                  output_scores=True, output_logits=True)
        out = self.hf.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        steps = out.scores if self.logprobs_mode.startswith("processed") else out.logits
        logprobs = torch.stack([s.float().log_softmax(-1) for s in steps], 1) if steps else None
        results = []
        for row, seq in enumerate(out.sequences[:, width:].tolist()):
            end = next((t for t, tok in enumerate(seq) if tok in stops), None)
            tokens = seq if end is None else seq[: end + 1]
            results.append(CompletionOutput(
                index=0, text=self._text(tokens, end is not None, p), token_ids=tokens,
                cumulative_logprob=None, logprobs=self._logprobs(logprobs, row, tokens, p),
                finish_reason="length" if end is None else "stop", stop_reason=None if end is None else tokens[-1]))
        return results

    def _text(self, tokens: list[int], stopped: bool, p: SamplingParams) -> str:
        if not p.detokenize or self.tokenizer is None:
            return ""
        text = self.tokenizer.decode(tokens[:-1] if stopped else tokens, skip_special_tokens=p.skip_special_tokens)
        cuts = [text.find(s) for s in p.stop if s and s in text]
        return text[: min(cuts)] if cuts and not p.include_stop_str_in_output else text

    @staticmethod
    def _logprobs(logprobs, row: int, tokens: list[int], p: SamplingParams) -> list[dict] | None:
        if p.logprobs is None:
            return None
        out = []
        for t, token in enumerate(tokens):
            lp = logprobs[row, t]
            top = lp.topk(p.logprobs).indices.tolist() if p.logprobs > 0 else []
            rank = lambda i: int((lp > lp[i]).sum()) + 1  # noqa: E731
            out.append({i: Logprob(float(lp[i]), rank(i)) for i in dict.fromkeys([token, *top])})
        return out


def _same_sampler(chunk: list[tuple[int, int]], params: list[SamplingParams]) -> list[list[tuple[int, int]]]:
    """Consecutive rows whose sampler is the same but for the seed (one transformers generate call each)."""
    key = lambda row: {**vars(params[row[0]]), "seed": None, "n": None}  # noqa: E731
    groups: list[list[tuple[int, int]]] = []
    for row in chunk:
        if groups and key(groups[-1][-1]) == key(row):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups
