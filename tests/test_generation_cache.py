"""Generations computed once: AlpacaEval 1 and 2 (same prompts, same settings, same policy) share one set of answers,
and a benchmark computed again sends no request to the policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lm_eval.api.model import LM
from omegaconf import open_dict

from harness.eval.generation import make_lm
from harness.eval.generation_cache import ANSWERS, cache_dir
from harness.eval.suite import run_suite
from harness.models import stage_content


class Counting(LM):
    """The real policy LM, counting the requests it is sent."""

    def __init__(self, lm: LM):
        super().__init__()
        self.lm, self.sent = lm, []

    def generate_until(self, requests, disable_tqdm: bool = False):
        self.sent += [r.args[0] for r in requests]
        return self.lm.generate_until(requests)

    def loglikelihood(self, requests):
        return self.lm.loglikelihood(requests)

    def loglikelihood_rolling(self, requests):
        return self.lm.loglikelihood_rolling(requests)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return self.lm.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer_name


def generated(bench: dict) -> list:
    rows = [json.loads(x) for x in (Path(bench["dir"]) / "lm_requests.jsonl").read_text().splitlines()]
    return [(r["args"], r["answer"]) for r in rows if r["kind"] == "generate_until"]


def test_alpaca_eval_1_and_2_and_a_recompute_share_one_generation(run_config, tiny_base, shared_stages, tmp_path):
    cfg = run_config("algorithm=none", "eval=tiny", "tracking=none")
    with open_dict(cfg):
        cfg.eval.benchmarks = {k: cfg.eval.benchmarks[k] for k in ("alpaca_eval1", "alpaca_eval2")}
    policy_id = {"path": tiny_base.path, "test": str(tmp_path)}  # a policy of its own: nothing cached yet
    built = []

    def factory():
        built.append(Counting(make_lm("hf", tiny_base, cfg.model, cfg.eval.batch_size)))
        return built[-1]

    first = run_suite(cfg.eval, tiny_base, policy_id, cfg.model, str(shared_stages), lm_factory=factory)
    assert all("error" not in b for b in first.values()), first
    n = cfg.eval.benchmarks.alpaca_eval1.limit
    assert len(built) == 1 and len(built[0].sent) == n  # AlpacaEval 2 sent no request of its own
    assert generated(first["alpaca_eval2"]) == generated(first["alpaca_eval1"])
    answers = (cache_dir(shared_stages, policy_id, content=stage_content(tiny_base)) / ANSWERS).read_text().splitlines()
    assert sum(json.loads(x)["kind"] == "generate_until" for x in answers) == n

    shutil.rmtree(first["alpaca_eval1"]["dir"])  # the benchmark is computed again: from the cache, no model built
    again = run_suite(cfg.eval, tiny_base, policy_id, cfg.model, str(shared_stages), lm_factory=factory)
    assert not again["alpaca_eval1"]["reused"] and again["alpaca_eval2"]["reused"]
    assert len(built) == 1 and len(built[0].sent) == n
    assert again["alpaca_eval1"]["score"] == first["alpaca_eval1"]["score"]
    assert generated(again["alpaca_eval1"]) == generated(first["alpaca_eval1"])


def test_another_policy_does_not_share_the_cache(tiny_base):
    assert cache_dir("/s", {"path": tiny_base.path}) != cache_dir("/s", {"stage": "abc"})
    assert cache_dir("/s", {"stage": "abc"}) != cache_dir("/s", {"stage": "abc", "best_of_n": {"n": 16}})


def test_the_plan_counts_shared_generations_once(run_config):
    from harness.sweep import plan

    (run,) = plan.plan_runs([["model=tulu2_13b", "algorithm=none", "eval=paper"]], lambda o: run_config(*o))
    rows = {r["dir"]: r for r in plan.report([run], 1)["stage_rows"]}
    hours = {s.spec["benchmark"]["name"]: rows[str(s.dir)]["gpu_hours"] for s in run.stages if s.kind == "eval"}
    assert hours["alpaca_eval1_gpt4_vs_davinci003"] > 0
    assert hours["alpaca_eval2_lc_gpt4turbo"] == 0.0  # the same 805 generations
    assert all(h > 0 for name, h in hours.items() if not name.startswith("alpaca_eval2")), hours
