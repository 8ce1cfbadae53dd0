"""Judges as configuration (schema.JudgeConfig): an OpenAI-compatible endpoint, or a local Hugging Face model.

Every judge use in the paper picks one of a few known answers (TruthfulQA: yes/no; XSTest: compliance/refusal
classes; AlpacaEval: which output is better), so a judge has one method, `choose(prompts, options)`, returning a
probability per option for each prompt:
  - `OpenAIJudge` asks the endpoint (temperature 0, top-5 logprobs) and reads the options' probabilities from the
    first token's logprobs when the options are single tokens, else the option the reply starts with.
  - `HFJudge` scores each option's log-likelihood after the prompt (lm-eval's HFLM), softmaxed over the options.
ToxiGen's toxicity model is a sequence classifier (`Classifier`). Verdicts are cached in the benchmark's stage
directory (`verdicts.jsonl`), so a rescore (`eval.recompute=true`) loads no judge, and a judge model is loaded
only when some verdict is missing. The API key is read from the environment variable the config *names*, at
request time, and never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from harness import console
from harness.eval import progress
from harness.records.jsonl import read_jsonl


VERDICTS_FILE = "verdicts.jsonl"
KINDS = ("openai", "hf", "string_match")


class JudgeUnavailable(RuntimeError):
    """The judge could not be reached or refused the request; the benchmark fails, the suite goes on."""


def _norm(text: str) -> str:
    return "".join(text.replace('"', "'").split()).lower()


def _softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


class OpenAIJudge:
    # Items Verdicts may send per call without changing any answer (harness.eval.progress): one request per item.
    chunk = 1

    def __init__(self, cfg):
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.cfg.api_key_env:
            key = os.environ.get(self.cfg.api_key_env)
            if not key:
                raise JudgeUnavailable(f"judge {self.cfg.model!r}: the environment variable {self.cfg.api_key_env} "
                                       "that should hold its API key is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, body: dict) -> dict:
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=self._headers())
        reason, attempts = None, 0
        for attempt in range(self.cfg.max_retries + 1):
            attempts += 1
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    return self._reply(response.read())
            except urllib.error.HTTPError as exc:  # the server answered: retry only when it asks us to
                reason = f"HTTP {exc.code} {exc.reason}"
                if exc.code in (401, 403) and self.cfg.api_key_env:
                    reason += f": the endpoint refused the API key in the environment variable {self.cfg.api_key_env}"
                if exc.code not in (429, 500, 502, 503, 504):
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < self.cfg.max_retries:
                time.sleep(min(2 ** attempt, 10))
        raise JudgeUnavailable(f"judge {self.cfg.model!r} at {self.cfg.base_url} failed after {attempts} attempt(s): {reason}")

    def _reply(self, body: bytes) -> dict:
        """The endpoint's reply when it is a chat completion; anything else (an HTML error page, JSON without
        `choices`) is an error naming the judge and what it sent."""
        try:
            reply = json.loads(body.decode("utf-8"))
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list) or not reply["choices"] \
                or not isinstance(reply["choices"][0], dict) or not isinstance(reply["choices"][0].get("message"), dict):
            shown = body[:120].decode("utf-8", errors="replace").replace("\n", " ")
            raise JudgeUnavailable(f"judge {self.cfg.model!r} at {self.cfg.base_url} did not answer with a chat "
                                   f"completion (no `choices[0].message`): {shown!r}; check its base_url (the part "
                                   "before /chat/completions)")
        return reply

    def _choose_one(self, prompt, options: list[str]) -> dict[str, float]:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        reply = self._post({"model": self.cfg.model, "messages": messages, "temperature": 0,
                            "max_tokens": self.cfg.max_tokens, "logprobs": True, "top_logprobs": 5})
        choice = reply["choices"][0]
        top = ((choice.get("logprobs") or {}).get("content") or [{}])[0].get("top_logprobs") or []
        found = {o: t["logprob"] for t in top for o in options if t["token"].strip() == o.strip()}
        if found:
            return _softmax(found)
        text = choice["message"].get("content") or ""
        for option in sorted(options, key=len, reverse=True):
            if _norm(text).startswith(_norm(option)):
                return {option: 1.0}
        # never scored as a "no" (or a 0): the benchmark fails and nothing of this reply is cached
        raise JudgeUnavailable(f"judge {self.cfg.model!r} at {self.cfg.base_url} answered {text[:120]!r}, none of "
                               f"the options {options}")

    def choose(self, prompts: list, options: list[str]) -> list[dict[str, float]]:
        return [self._choose_one(p, options) for p in prompts]

    def complete(self, prompts: list) -> list[str]:
        """The judge's raw reply text to each prompt (greedy, `max_tokens`), for a parser of the judge's own."""
        out = []
        for prompt in prompts:
            messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            reply = self._post({"model": self.cfg.model, "messages": messages, "temperature": 0, "max_tokens": self.cfg.max_tokens})
            out.append(reply["choices"][0]["message"].get("content") or "")
        return out


class HFJudge:
    # Every item in one call: HFLM sorts and batches the call's requests, so chunks could change the numbers; the bar
    # follows HFLM's answers instead (harness.eval.progress).
    chunk = None

    def __init__(self, path: str, revision: str | None, batch_size: int):
        from lm_eval.models.huggingface import HFLM
        from transformers import AutoTokenizer

        from harness.models import ModelRef, load_causal_lm

        # the judge's own tokenizer and chat template (TruthfulQA's judges read raw text and need none)
        ref = ModelRef(path, revision)
        where, at = ref.weights()  # the offline mirror's copy on a compute node
        tok = AutoTokenizer.from_pretrained(where, revision=at)
        tok.pad_token = tok.pad_token or tok.eos_token
        self.lm = HFLM(pretrained=load_causal_lm(ref), tokenizer=tok, batch_size=batch_size)

    def choose(self, prompts: list, options: list[str]) -> list[dict[str, float]]:
        from lm_eval.api.instance import Instance

        contexts = [self.lm.apply_chat_template(p) if isinstance(p, list) else p for p in prompts]
        requests = [Instance("loglikelihood", doc={}, arguments=(c, o), idx=i) for c in contexts for i, o in enumerate(options)]
        with progress.follow(self.lm, "loglikelihood", per=len(options)):
            scores = [ll for ll, _ in self.lm.loglikelihood(requests)]
        n = len(options)
        return [_softmax(dict(zip(options, scores[i * n:(i + 1) * n]))) for i in range(len(prompts))]

    def probabilities(self, prompts: list[str], option: str) -> list[float]:
        """P(option | prompt) over the judge's whole vocabulary, not renormalised over a set of options (open-instruct
        eval/utils.py score_completions: the completion's log-softmax summed, then exp)."""
        from lm_eval.api.instance import Instance

        requests = [Instance("loglikelihood", doc={}, arguments=(p, option), idx=0) for p in prompts]
        with progress.follow(self.lm, "loglikelihood"):
            return [math.exp(ll) for ll, _ in self.lm.loglikelihood(requests)]


class Classifier:
    """A sequence classifier (ToxiGen: `tomh/toxigen_roberta`, label 1 = toxic); returns the argmax label."""

    def __init__(self, path: str, revision: str | None, batch_size: int):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from harness.models import ModelRef, device

        path, revision = ModelRef(path, revision).weights()  # the offline mirror's copy on a compute node
        self.torch, self.batch_size, self.device = torch, batch_size, device()
        self.tok = AutoTokenizer.from_pretrained(path, revision=revision)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, revision=revision).to(self.device).eval()
        # Items Verdicts may send per call: one batch, the same batches `classify` makes of the whole list (in order).
        self.chunk = batch_size

    def classify(self, texts: list[str]) -> list[int]:
        from tqdm import tqdm

        labels = []
        for i in tqdm(range(0, len(texts), self.batch_size), desc="classifying", disable=len(texts) <= self.batch_size):
            batch = self.tok(texts[i:i + self.batch_size], padding=True, truncation=True, max_length=512, return_tensors="pt")
            with self.torch.no_grad():
                logits = self.model(**batch.to(self.device)).logits
            labels += logits.argmax(-1).tolist()
        return labels


# --------------------------------------------------------------------------------------------- cache + factory
class Verdicts:
    """Answers of one judge, cached by input in the stage directory; the judge is built only on a miss."""

    def __init__(self, identity: dict, build: Callable[[], object], path: Path, label: str = "judging"):
        self.identity, self.build, self.path, self._judge, self.label = identity, build, Path(path), None, label
        self.cache = {}
        if self.path.exists():  # a torn last line (killed mid-append) is dropped and asked again
            for row in read_jsonl(self.path, repair=True):
                self.cache[row["key"]] = row["verdict"]

    @property
    def judge(self):
        if self._judge is None:
            self._judge = self.build()
        return self._judge

    def _key(self, method: str, item, options) -> str:
        return hashlib.sha256(json.dumps([self.identity, method, item, options], sort_keys=True).encode()).hexdigest()

    def _cached(self, method: str, items: list, options, compute: Callable[[list], list]) -> list:
        keys = [self._key(method, item, options) for item in items]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            # in the judge's chunks (answers as in one call), each stored when done: a killed run keeps them
            chunk = getattr(self.judge, "chunk", None) or len(missing)  # the judge built before the bar starts
            with progress.bar(self.label, len(missing)):
                for start in range(0, len(missing), chunk):
                    part = missing[start:start + chunk]
                    answers = compute([items[i] for i in part])
                    with self.path.open("a") as f:
                        for i, answer in zip(part, answers):
                            self.cache[keys[i]] = answer
                            f.write(json.dumps({"key": keys[i], "verdict": answer}) + "\n")
                    console.advance(len(part))
        return [self.cache[k] for k in keys]

    def choose(self, prompts: list, options: list[str]) -> list[dict[str, float]]:
        return self._cached("choose", prompts, options, lambda items: self.judge.choose(items, options))

    def classify(self, texts: list[str]) -> list[int]:
        return self._cached("classify", texts, None, lambda items: self.judge.classify(items))

    def complete(self, prompts: list) -> list[str]:
        return self._cached("complete", prompts, None, lambda items: self.judge.complete(items))

    def probabilities(self, prompts: list[str], option: str) -> list[float]:
        return self._cached("probabilities", prompts, option, lambda items: self.judge.probabilities(items, option))

    @property
    def kind(self) -> str:
        return self.identity["kind"]


def judge_identity(cfg) -> dict:
    """What determines a judge's answers (never the key itself, only where it is read from)."""
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in ("timeout_s", "max_retries", "batch_size")}


def make_judge(bench, role: str, ctx, classifier: bool = False) -> Verdicts:
    """The benchmark's judge for `role` (e.g. "truth", "refusal", "annotator", "classifier"), with its verdict cache."""
    if role not in bench.judges:
        raise ValueError(f"benchmark {bench.name!r} needs a judge {role!r}; configured: {sorted(bench.judges)}")
    cfg = bench.judges[role]
    if cfg.kind not in KINDS or cfg.kind == "string_match":
        raise ValueError(f"benchmark {bench.name!r}, judge {role!r}: kind {cfg.kind!r} cannot judge here; "
                         f"valid: {['hf'] if classifier else ['openai', 'hf']}")
    if classifier and cfg.kind != "hf":
        raise ValueError(f"benchmark {bench.name!r}, judge {role!r}: a classifier must be kind 'hf', not {cfg.kind!r}")

    def build():
        if cfg.kind == "openai":
            return OpenAIJudge(cfg)
        path = cfg.model
        if path == "tiny":
            from harness.eval import tiny_judges

            path = (tiny_judges.toxicity_classifier if classifier else tiny_judges.causal_judge)(ctx.stages_root)
        return (Classifier if classifier else HFJudge)(path, cfg.revision, cfg.batch_size)

    return Verdicts({"role": role, **judge_identity(cfg)}, build, ctx.dir / VERDICTS_FILE,
                    f"judging {getattr(ctx, 'name', '') or bench.name}")
