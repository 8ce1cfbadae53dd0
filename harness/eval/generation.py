"""The policy as an lm-eval `LM`, and the record that lets a benchmark be rescored without it.

Every runner talks to the policy only through lm-eval's `LM` interface (`generate_until`, `loglikelihood`,
`apply_chat_template`), so any wrapper (HF, vLLM, best-of-N) works on every benchmark. `RecordingLM` writes each
request and its answer to `lm_requests.jsonl` in the benchmark's stage directory; `ReplayLM` answers the same
requests from that file, which is how `eval.recompute=true` rescores a benchmark with no model loaded.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections import defaultdict, deque
from pathlib import Path

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM, hash_args

from harness.chat import sentencepiece_segments
from harness.models import ModelRef, load_causal_lm, load_tokenizer
from harness.records.jsonl import read_jsonl

REQUESTS_FILE = "lm_requests.jsonl"
BACKENDS = ("hf", "vllm")


def vllm_kwargs(ref: ModelRef, model_cfg, tensor_parallel_size: int = 1, seed: int | None = None) -> dict:
    """lm-eval's VLLM arguments: the model path (vLLM loads weights and tokenizer itself; lm-eval types `tokenizer` as
    a path, so never a tokenizer object), the dtype, the tensor-parallel degree (8 for a 70B policy on one node), and
    the sampling seed of the engine when eval.seed sets one (else lm-eval's default)."""
    if tensor_parallel_size < 1:
        raise ValueError(f"eval.tensor_parallel_size={tensor_parallel_size}; it is the number of GPUs per model, >= 1")
    path, revision = ref.weights()
    return {"pretrained": path, "revision": revision, "tokenizer": path, "batch_size": "auto",
            "dtype": model_cfg.dtype, "tensor_parallel_size": int(tensor_parallel_size)} | (
        {"seed": int(seed)} if seed is not None else {})


def forced_chat_template(model_cfg) -> str | None:
    """The chat template the config forces (model.chat_template), as Jinja text; None keeps the tokenizer's own."""
    from harness.chat import TEMPLATES

    return TEMPLATES[model_cfg.chat_template] if model_cfg.chat_template else None


def load_placed_causal_lm(ref: ModelRef, dtype: str, placement):
    """A policy too big for one device (70B): accelerate places its layers over the GPUs, then CPU memory, then disk
    (`device_map: auto`, per-device `max_memory` such as {0: 70GiB, 1: 70GiB, cpu: 200GiB}, `offload_folder`)."""
    from transformers import AutoModelForCausalLM

    from harness.models import torch_dtype

    if placement.device_map != "auto":
        raise ValueError(f"eval.placement.device_map={placement.device_map!r}; valid: 'auto' or null (one device)")
    max_memory = {(int(k) if str(k).isdigit() else k): v for k, v in (placement.max_memory or {}).items()} or None
    path, revision = ref.weights()
    return AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=torch_dtype(dtype),
                                                device_map="auto", max_memory=max_memory,
                                                offload_folder=placement.offload_folder)


def input_device(model):
    """Where a placed model's inputs go: the device of its first module (accelerate's hooks move the rest)."""
    import torch

    first = next(iter(model.hf_device_map.values()))
    if first in ("cpu", "disk"):
        return torch.device("cpu")
    return torch.device(f"cuda:{first}" if isinstance(first, int) else first)


def make_lm(backend: str, ref: ModelRef, model_cfg, batch_size: int, tensor_parallel_size: int = 1,
            placement=None, seed: int | None = None, load_in_8bit: bool = False, engine: dict | None = None) -> LM:
    """The policy for lm-eval: batched transformers generation (CPU/GPU; `placement` spreads a big policy over
    devices; `load_in_8bit`: its weights in 8 bits on the GPUs), or lm-eval's vLLM backend (GPU extra; `engine`: more
    of its arguments, e.g. gpu_memory_utilization)."""
    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        tok = load_tokenizer(ref, model_cfg.chat_template)
        if load_in_8bit:
            from harness.models import load_causal_lm_8bit

            model = load_causal_lm_8bit(ref)
        elif placement is None or not placement.device_map:
            return HFLM(pretrained=load_causal_lm(ref, model_cfg.dtype), tokenizer=tok, batch_size=batch_size)
        else:
            model = load_placed_causal_lm(ref, model_cfg.dtype, placement)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
        lm._device = input_device(model)  # HFLM takes model.device, which is "meta" when the first layer sits on disk
        return lm
    if backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError("eval.backend=vllm needs vLLM, which is not installed: on a GPU machine run "
                               "`pip install -e .[vllm]` (it brings its own torch), or use eval.backend=hf")
        from lm_eval.models.vllm_causallms import VLLM

        lm = VLLM(**vllm_kwargs(ref, model_cfg, tensor_parallel_size, seed) | (engine or {}))
        sentencepiece_segments(lm.tokenizer)  # lm-eval encodes the prompts with it and sends vLLM the token ids
        template = forced_chat_template(model_cfg)
        if template:  # lm-eval's VLLM renders chats with `hf_chat_template`: the forced template (Tulu), not the model's
            lm.hf_chat_template = lm.tokenizer.chat_template = template
        return lm
    raise ValueError(f"eval.backend={backend!r}; valid: {list(BACKENDS)}")


# --------------------------------------------------------------------------------------------- requests
def generate(lm: LM, prompts: list[str], gen, stop: list[str] | None = None) -> list[list[str]]:
    """`gen.num_samples` completions of each (already chat-formatted) prompt, through `lm.generate_until`."""
    kwargs = {"until": list(stop or []) + list(gen.stop), "max_gen_toks": gen.max_new_tokens}
    kwargs |= {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p} if gen.temperature > 0 else {"do_sample": False}
    n = gen.num_samples
    requests = [Instance("generate_until", doc={}, arguments=(p, dict(kwargs)), idx=i, repeats=n)
                for i, p in enumerate(prompts) for _ in range(n)]
    outputs = lm.generate_until(requests)
    return [outputs[i * n:(i + 1) * n] for i in range(len(prompts))]


def fit_to_context(lm: LM, prompts: list[str], gen, record: Path, shared_dir: Path | None = None):
    """`gen` with max_new_tokens capped at the model's context minus the longest prompt (open-instruct's AlpacaEval
    asks vLLM for 8192 tokens and vLLM stops at the context's end). The cap is written to `record` the first time and
    read back after, so a recompute (no tokenizer, no model) sends the same requests; with the policy's generation
    cache (`shared_dir`) it is kept there too, so a benchmark computed again answers from the cache without building
    the policy for its tokenizer."""
    from omegaconf import OmegaConf

    from harness.records.stages import digest

    records = [Path(record)] + ([Path(shared_dir) / f"context_cap-{digest([prompts, gen.max_new_tokens], 16)}.json"]
                                if shared_dir else [])
    known = next((r for r in records if r.exists()), None)
    if known is not None:
        cap = json.loads(known.read_text())["max_new_tokens"]
    else:
        try:
            longest, context = max(len(lm.tok_encode(p)) for p in prompts), lm.max_length
        except AttributeError:  # a model without a tokenizer (an API or scripted model): the configured length
            longest, context = None, None
        cap = gen.max_new_tokens if context is None else min(gen.max_new_tokens, context - longest)
        if cap < 1:
            raise ValueError(f"the longest prompt ({longest} tokens) fills the model's context ({context})")
        known = {"max_new_tokens": cap, "context": context, "longest_prompt": longest}
    for r in records:
        if not r.exists():
            r.parent.mkdir(parents=True, exist_ok=True)
            r.write_text(json.dumps(known if isinstance(known, dict) else json.loads(known.read_text())))
    return OmegaConf.merge(gen, {"max_new_tokens": cap})


def chat_prompt(lm: LM, user: str, response_prefix: str = "") -> str:
    """One user turn in the policy's own chat template, the assistant turn opened (and prefilled with a prefix)."""
    return lm.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True) + response_prefix


# --------------------------------------------------------------------------------------------- record / replay
class OutputCheck:
    """Counts what the policy answered, so that a broken model fails its benchmark instead of scoring 0: more empty
    generations than the benchmark allows (NaN weights decode to nothing; a stop string that matches at once), or any
    log-likelihood that is not finite (a model with finite weights never gives one)."""

    def __init__(self):
        self.generations = self.empty = self.scores = self.nonfinite = 0

    def tally(self, kind: str, answers: list) -> None:
        if kind == "generate_until":
            self.generations += len(answers)
            self.empty += sum(not str(a).strip() for a in answers)
        elif kind in ("loglikelihood", "loglikelihood_rolling"):
            values = [a[0] if isinstance(a, (list, tuple)) else a for a in answers]
            self.scores += len(values)
            self.nonfinite += sum(not math.isfinite(v) for v in values)

    def problem(self, max_empty_fraction: float = 0.0) -> str | None:
        if self.nonfinite:
            return (f"{self.nonfinite} of {self.scores} log-likelihoods are NaN or infinite (the model's logits are not "
                    "finite: broken weights?)")
        if self.generations and self.empty / self.generations > max_empty_fraction:
            return (f"{self.empty} of {self.generations} generations are empty ({self.empty / self.generations:.0%} > "
                    f"max_empty_fraction={max_empty_fraction}: a broken model, e.g. NaN weights, or a stop string "
                    "that matches at once)")
        return None


class RecordingLM(LM):
    """Passes every request to the policy and appends (request, answer) to `path`.

    A request already answered in `path` (a stage resumed after a failure, e.g. of its judge) is answered from the
    record: the policy is built (`lm`: an LM, or a zero-argument callable returning one) only for the rest."""

    def __init__(self, lm, path: Path):
        super().__init__()
        self._lm, self.path = lm, Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recorded = defaultdict(deque)
        if self.path.exists():
            for row in read_jsonl(self.path, repair=True):
                self.recorded[row["key"]].append(row["answer"])
        self.check = OutputCheck()

    @property
    def lm(self) -> LM:
        if callable(self._lm) and not isinstance(self._lm, LM):
            self._lm = self._lm()
        return self._lm

    def _record(self, kind: str, args: list, answers: list) -> None:
        with self.path.open("a") as f:
            for a, answer in zip(args, answers):
                f.write(json.dumps({"kind": kind, "key": hash_args(kind, a), "args": a, "answer": answer}, default=list) + "\n")

    def _from_record(self, kind: str, args: list):
        queue = self.recorded.get(hash_args(kind, args))
        if not queue:
            return None
        # each sampled generation was recorded once per request; deterministic answers can be read again
        answer = queue.popleft() if kind == "generate_until" else queue[0]
        return tuple(answer) if kind == "loglikelihood" else answer

    def _call(self, kind: str, requests: list[Instance]) -> list:
        args = [json.loads(json.dumps(list(r.args))) for r in requests]  # before the backend can mutate gen_kwargs
        answers = [self._from_record(kind, a) for a in args]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            new = getattr(self.lm, kind)([requests[i] for i in missing])
            self._record(kind, [args[i] for i in missing], new)
            for i, answer in zip(missing, new):
                answers[i] = answer
        self.check.tally(kind, answers)
        return answers

    def generate_until(self, requests):
        return self._call("generate_until", requests)

    def loglikelihood(self, requests):
        return self._call("loglikelihood", requests)

    def loglikelihood_rolling(self, requests):
        return self._call("loglikelihood_rolling", requests)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        text = self._from_record("apply_chat_template", [chat_history, add_generation_prompt])
        if text is None:
            text = self.lm.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)
            self._record("apply_chat_template", [[chat_history, add_generation_prompt]], [text])
        return text

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer_name

    def chat_template(self, chat_template=False):
        return self.lm.chat_template(chat_template)

    def tok_encode(self, text: str, **kwargs):
        return self.lm.tok_encode(text, **kwargs)

    @property
    def max_length(self) -> int:
        return self.lm.max_length


class ReplayLM(LM):
    """Answers requests from a `RecordingLM` file; a request that was never recorded is an error, never a guess."""

    def __init__(self, path: Path):
        super().__init__()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no saved samples to recompute from: {path} does not exist (run the benchmark once first)")
        self.path, self.answers, self.check = path, defaultdict(deque), OutputCheck()
        for row in read_jsonl(path):
            self.answers[row["key"]].append(row["answer"])

    def _answer(self, kind: str, args: list):
        queue = self.answers.get(hash_args(kind, args))
        if not queue:
            raise KeyError(f"{kind} request not in the saved samples {self.path}: the benchmark's prompts changed "
                           f"since they were generated; rerun without eval.recompute")
        answer = queue.popleft()
        queue.append(answer)  # sampled repeats come back in their recorded order
        return answer

    def _answers(self, kind: str, requests) -> list:
        answers = [self._answer(kind, list(r.args)) for r in requests]
        answers = [tuple(a) for a in answers] if kind == "loglikelihood" else answers
        self.check.tally(kind, answers)
        return answers

    def generate_until(self, requests):
        return self._answers("generate_until", requests)

    def loglikelihood(self, requests):
        return self._answers("loglikelihood", requests)

    def loglikelihood_rolling(self, requests):
        return self._answers("loglikelihood_rolling", requests)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return self._answer("apply_chat_template", [chat_history, add_generation_prompt])

    @property
    def tokenizer_name(self) -> str:
        return "replay"

    def chat_template(self, chat_template=False):
        return "replay"
