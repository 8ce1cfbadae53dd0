"""Generations computed once: a policy's answers cached by (policy identity, request, generation settings).

AlpacaEval 1 and 2 send the same 805 prompts with the same settings to the same policy; any two benchmarks, reruns
or recomputes that send the same request share one answer. `CachedLM` sits between a benchmark (its RecordingLM) and
the policy: a request whose answer is cached is answered from disk, the others go to the policy (built only then,
through harness.eval.suite.LazyPolicy) and are added. The cache lives with the stages:

    <stages>/generations/<digest of policy identity + content + library versions>/answers.jsonl

one line per answer: {"kind", "key" (lm-eval's hash of the request's arguments: prompt and generation settings),
"n" (which repeat of a sampled request: the k-th identical request of a call is answered by the k-th cached sample),
"answer"}. Appends are locked, so runs sharing a policy can write at once. Chat templating is cached too, so a
benchmark whose requests are all cached builds no model; a wrapper with state between calls (best-of-N) is therefore
not cached (harness.pipeline.evaluate: share_generations=False). While the policy answers, the console shows a bar
over the requests sent (harness.eval.progress).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from filelock import FileLock
from lm_eval.api.model import LM, hash_args

from harness.eval import progress
from harness.records.jsonl import read_jsonl
from harness.records.stages import digest, library_versions

ANSWERS = "answers.jsonl"
# The console's bar while the policy answers what the cache does not hold (harness.eval.progress).
BARS = {"generate_until": "generating", "loglikelihood": "scoring", "loglikelihood_rolling": "scoring"}


def cache_dir(stages_root: str | Path, policy_id: dict, seed: int | None = None, content: str | None = None) -> Path:
    """The policy's cache: its identity and the library versions (as in every stage key) name it; the sampling seed
    of a seeded sampled benchmark (eval.seed: another seed, other samples; None keeps the unseeded name); and, for a
    policy a stage made, the digest of its files' content (harness.models.stage_content), so a rebuilt policy (a new
    build under the same stage key) never meets another build's answers. A policy is verified against that content
    before it answers (harness.models.verify_weights): weights corrupted on disk never add answers to it."""
    key = {"policy": policy_id, "versions": library_versions()} | ({"seed": seed} if seed is not None else {})
    return Path(stages_root) / "generations" / digest(key | ({"content": content} if content is not None else {}))


class CachedLM(LM):
    """Answers from the cache at `directory`, asking `policy` (a LazyPolicy: `.lm` builds the model) for the rest."""

    def __init__(self, policy, directory: Path, name: str = ""):
        super().__init__()
        self.policy, self.dir, self.name = policy, Path(directory), name
        self.path, self.lock = self.dir / ANSWERS, FileLock(str(self.dir / (ANSWERS + ".lock")))
        self.answers: dict[tuple[str, str, int], Any] = {}
        # Requests sent on to the policy (the others were answered from the cache), for the record and the tests.
        self.sent = Counter()
        self._load()

    def _load(self) -> None:
        if self.path.exists():
            with self.lock:  # a torn last line (a process killed mid-append) is cut off: no other appends meanwhile
                rows = read_jsonl(self.path, repair=True)
            for row in rows:
                self.answers[(row["kind"], row["key"], row["n"])] = row["answer"]

    def _cached_call(self, kind: str, args_list: list[list], ask) -> list:
        """Answers of `args_list`; those missing come from `ask(indices)` (one call to the policy) and are stored."""
        seen, keys = Counter(), []
        for args in args_list:
            key = hash_args(kind, args)
            keys.append((kind, key, seen[key]))
            seen[key] += 1
        missing = [i for i, k in enumerate(keys) if k not in self.answers]
        if missing:
            self._load()  # another process may have answered them meanwhile
            missing = [i for i, k in enumerate(keys) if k not in self.answers]
        if missing:
            answers = ask(missing)
            self.sent[kind] += len(missing)
            rows = []
            for i, answer in zip(missing, answers):
                self.answers[keys[i]] = answer
                rows.append({"kind": kind, "key": keys[i][1], "n": keys[i][2], "answer": answer})
            self.dir.mkdir(parents=True, exist_ok=True)
            with self.lock, self.path.open("a") as f:
                f.writelines(json.dumps(r, default=list) + "\n" for r in rows)
        return [self.answers[k] for k in keys]

    def _requests(self, kind: str, requests) -> list:
        args = [json.loads(json.dumps(list(r.args))) for r in requests]  # before the backend can mutate gen_kwargs
        out = self._cached_call(kind, args, lambda idx: self._ask(kind, [requests[i] for i in idx]))
        return [tuple(a) if kind == "loglikelihood" else a for a in out]

    def _ask(self, kind: str, requests) -> list:
        """The policy's answers in one call (its own batching), a bar on the console meanwhile."""
        lm = self.policy.lm  # built before the bar starts
        with progress.bar(f"{BARS[kind]} {self.name}".strip(), len(requests)), progress.follow(lm, kind):
            return getattr(lm, kind)(requests)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._requests("generate_until", requests)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._requests("loglikelihood", requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._requests("loglikelihood_rolling", requests)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        args = [chat_history, add_generation_prompt]
        return self._cached_call("apply_chat_template", [args], lambda idx: [
            self.policy.lm.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)])[0]

    @property
    def tokenizer_name(self) -> str:
        return self._cached_call("tokenizer_name", [[]], lambda idx: [self.policy.lm.tokenizer_name])[0]

    def chat_template(self, chat_template=False):
        return self._cached_call("chat_template", [[chat_template]], lambda idx: [self.policy.lm.chat_template(chat_template)])[0]

    def __getattr__(self, name):  # anything else a runner reads (e.g. the tokenizer) is the policy's own
        if name in ("policy", "answers", "dir", "name"):
            raise AttributeError(name)
        return getattr(self.policy.lm, name)
