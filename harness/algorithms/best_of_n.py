"""Best-of-N as an evaluation-time policy: the SFT model samples N responses at temperature 0.7 and the reward model
keeps the highest-scoring one (protocol, "Best-of-N"; Table 3's BoN column).

    python -m harness algorithm=best_of_n reward_model=tiny eval=tiny            # tiny model, CPU
    python -m harness algorithm=best_of_n model=tulu2_13b reward_model=uf_13b eval=bon

Unlike the other algorithm modules, this one imports lm-eval when loaded (`BestOfN` is an lm-eval `LM`); the registry
loads it only for algorithm=best_of_n.

`BestOfN` is an lm-eval `LM` wrapped around the policy's own, so every benchmark runner scores its outputs unchanged:
`generate_until` samples N per request and returns the reward model's pick; `loglikelihood` (multiple choice) is the
underlying model's, since best-of-N changes generations only. The reward model reads each candidate as the assistant
turn of the request's conversation, rendered with its own chat template (any tokenizer works); requests without a
chat history (no chat template) are scored as raw text, context + candidate.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

from lm_eval.api.model import LM

from harness.algorithms import Algorithm, recipe

if TYPE_CHECKING:
    from harness.train.reward import RewardScorer


class BestOfN(LM):
    def __init__(self, lm: LM, scorer: RewardScorer, n: int, temperature: float, top_p: float = 1.0):
        super().__init__()
        if n < 1:
            raise ValueError(f"best-of-N needs n >= 1, got n={n}")
        self.lm, self.scorer, self.n, self.temperature, self.top_p = lm, scorer, n, temperature, top_p
        self._chats: dict[str, list[dict]] = {}  # rendered context -> the messages it came from
        # One entry per request: context, candidates, their scores and the index kept (for audits and tests).
        self.picks: list[dict] = []

    # lm-eval renders chat requests through the model: remember the messages behind each rendered context.
    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        text = self.lm.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)
        self._chats[text] = chat_history
        return text

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer_name

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.lm.chat_template(chat_template)

    def __getattr__(self, name):  # everything else (tokenizer, device, ...) is the underlying model's
        if name == "lm":
            raise AttributeError(name)
        return getattr(self.lm, name)

    def loglikelihood(self, requests):
        return self.lm.loglikelihood(requests)

    def loglikelihood_rolling(self, requests):
        return self.lm.loglikelihood_rolling(requests)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        samples = []
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = {**gen_kwargs, "do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
            samples += [dataclasses.replace(req, arguments=(context, kwargs))] * self.n
        outputs = self.lm.generate_until(samples)
        picked = []
        for i, req in enumerate(requests):
            context = req.args[0]
            candidates = outputs[i * self.n : (i + 1) * self.n]
            scores = self.score(context, candidates)
            best = int(scores.argmax())
            self.picks.append({"context": context, "candidates": candidates, "scores": scores.tolist(), "picked": best})
            picked.append(candidates[best])
        return picked

    def score(self, context: str, candidates: list[str]):
        chat = self._chats.get(context)
        if chat is None:
            return self.scorer.score_texts([context + c for c in candidates])
        if chat[-1]["role"] == "assistant":  # the request continues a started answer (a generation prefix)
            chat, prefix = chat[:-1], chat[-1]["content"]
        else:
            prefix = ""
        return self.scorer.score_conversations([chat + [{"role": "assistant", "content": prefix + c}] for c in candidates])


def wrapper(alg, reward_model, dtype: str) -> Callable[[LM], BestOfN]:
    """Wraps the suite's policy LM (harness.eval.suite.LazyPolicy); the reward model loads with it, only if needed,
    frozen in `dtype` (the run's model.dtype)."""

    def wrap(lm: LM) -> BestOfN:
        from harness.train.reward import RewardScorer

        scorer = RewardScorer.load(reward_model.ref, reward_model.chat_template, alg.score_batch_size, dtype)
        return BestOfN(lm, scorer, alg.n, alg.temperature, alg.top_p)

    return wrap


class BestOfNAlgorithm(Algorithm):
    """No training: the evaluated policy is the SFT model wrapped in `BestOfN`."""

    name = "best_of_n"
    axes = ("model", "algorithm", "reward_model")

    def uses_reward_model(self, alg) -> bool:
        return True

    def wrap_policy(self, cfg, reward_model):
        return wrapper(cfg.algorithm, reward_model, cfg.model.dtype)

    def policy_identity(self, cfg, reward_model) -> dict:
        return {"best_of_n": recipe(cfg.algorithm), "reward_model": reward_model.identity}


ALGORITHM = BestOfNAlgorithm()
