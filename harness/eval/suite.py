"""Run a suite: every benchmark is its own stage (keyed by the policy and that benchmark's regime), so a new
benchmark or a failed judge never reruns the others. One benchmark failing is recorded; the rest still finish.

Every runner has the same signature, `run(bench, ctx) -> result`, and reaches the policy only through `ctx.lm`
(an lm-eval `LM`). With `eval.recompute=true` each complete benchmark is scored again from its saved requests and
judge verdicts (harness.eval.generation.ReplayLM): scoring code runs, no model is loaded.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.eval import alpacaeval, code, generation_cache, lm_eval_runner, toxigen, truthfulqa, xstest
from harness.eval.generation import REQUESTS_FILE, RecordingLM, ReplayLM, make_lm
from harness.eval.generation_cache import CachedLM
from harness.models import ModelRef, stage_content, verify_weights
from harness.planning import as_evaluated, benchmark_stage, eval_model, sampling_seed
from harness.records.stages import Stage

log = logging.getLogger(__name__)

RUNNERS = {
    "lm_eval": lm_eval_runner.run,
    "code": code.run,
    "toxigen": toxigen.run,
    "truthfulqa": truthfulqa.run,
    "xstest": xstest.run,
    "alpaca_eval": alpacaeval.run,
}


class LazyPolicy:
    """Builds the policy's lm-eval model only if some benchmark still needs to generate."""

    def __init__(self, factory: Callable[[], Any]):
        self.factory, self._lm = factory, None

    @property
    def lm(self):
        if self._lm is None:
            self._lm = self.factory()
        return self._lm


@dataclass
class EvalContext:
    """What a runner gets besides its benchmark config."""

    # The benchmark's stage directory: data, samples, judge verdicts, lm requests.
    dir: Path
    policy: LazyPolicy
    batch_size: int
    mirror: str | None = None
    stages_root: Path | None = None
    recompute: bool = False
    # The policy's generation cache (harness.eval.generation_cache): requests another benchmark, run or recompute
    # already sent are answered from it; None sends every request to the policy.
    generations: Path | None = None
    # The benchmark's key in the suite, for the console's progress bars (harness.eval.progress).
    name: str = ""
    # Seed of the benchmark's sampling (eval.seed, for a sampled benchmark), set before it generates; None: unseeded.
    seed: int | None = None
    _lm: Any = field(default=None, repr=False)

    @property
    def lm(self):
        """The policy, recording every request (or, when recomputing, answering from the record)."""
        if self._lm is None:
            path = self.dir / REQUESTS_FILE
            # the policy itself is built only for requests the record (of a resumed stage) does not answer
            if self.recompute:
                self._lm = ReplayLM(path)
            else:
                source = ((lambda: CachedLM(self.policy, self.generations, self.name)) if self.generations
                          else (lambda: self.policy.lm))
                self._lm = RecordingLM(source, path)
        return self._lm


class BrokenOutputs(RuntimeError):
    """The policy's answers cannot be scored (too many empty generations, non-finite log-likelihoods): failing, not
    scoring 0 (and not kept: the stage is not complete, its answers are set aside)."""


def run_benchmark(bench, ctx: EvalContext) -> dict:
    if bench.runner not in RUNNERS:
        raise ValueError(f"benchmark {bench.name!r}: unknown runner {bench.runner!r}; valid: {sorted(RUNNERS)}")
    if ctx.seed is not None:  # python, numpy and torch generators (transformers' sampling draws from torch's)
        from transformers import set_seed

        set_seed(ctx.seed)
    result = RUNNERS[bench.runner](bench, ctx)
    problem = ctx._lm.check.problem(bench.max_empty_fraction) if ctx._lm is not None else None
    if problem:
        if not ctx.recompute:  # a rerun must ask the (repaired) policy again, not replay these answers
            (ctx.dir / REQUESTS_FILE).replace(ctx.dir / (REQUESTS_FILE + ".rejected"))
        raise BrokenOutputs(f"benchmark {bench.name!r} is not scored: {problem}")
    return result


def recompute(stage: Stage, bench, ctx: EvalContext) -> dict:
    """Rescore a complete benchmark stage from its saved samples, in place."""
    if not stage.complete:
        raise FileNotFoundError(f"eval.recompute=true but benchmark {bench.name!r} has no complete stage at {stage.dir}: "
                                "run it once without recompute")
    start = time.time()
    result = run_benchmark(bench, ctx) | {"recomputed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "stage_seconds": round(time.time() - start, 2),
                                          "policy_content": stage.result().get("policy_content")}  # same answers
    stage.mark_complete(result)
    return result


def outcome(key: str, bench, stage: Stage, attempt: Callable[[], tuple[dict, bool]]) -> dict:
    """One benchmark's entry in the run's results: `attempt()` -> (result, reused), or its error when it failed.
    A failure is recorded, never raised, so the suite goes on (and the stage, not complete, runs again next time)."""
    try:
        result, reused = attempt()
    except Exception as exc:
        log.error("benchmark %s failed: %s", key, exc)
        print(f"[harness] benchmark {key} FAILED: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "category": bench.category, "name": bench.name, "dir": str(stage.dir)}
    return {**result, "category": bench.category, "name": bench.name, "dir": str(stage.dir), "reused": reused}


def run_suite(eval_cfg, policy: ModelRef, policy_id: dict, model_cfg, stages_root: str, mirror: str | None = None,
              lm_factory: Callable[[], Any] | None = None, share_generations: bool = True) -> dict[str, dict]:
    """Benchmark key -> {score, metrics, n, samples, dir, reused} or {error} when it failed.

    `lm_factory` builds the policy's lm-eval model (default: `eval.backend` over the policy's weights); a wrapper
    such as best-of-N passes its own. `share_generations`: answer requests already sent to the same policy (by
    another benchmark, run or recompute) from its generation cache (harness.eval.generation_cache).
    """
    model_cfg = eval_model(model_cfg)[0]
    eval_seed = eval_cfg.get("seed")
    build = lm_factory or (lambda: make_lm(eval_cfg.backend, policy, model_cfg, eval_cfg.batch_size,
                                           eval_cfg.tensor_parallel_size, eval_cfg.placement, seed=eval_seed,
                                           load_in_8bit=eval_cfg.load_in_8bit))
    policy_lm = LazyPolicy(lambda: (verify_weights(policy), build())[1])
    content = stage_content(policy)  # what the policy's files hold: its generations and scores belong to it
    out = {}
    for key, bench in eval_cfg.benchmarks.items():
        bench = as_evaluated(bench, model_cfg)  # open-instruct's plain-text prompt details for an untuned model
        seed = sampling_seed(bench, eval_seed)
        stage = benchmark_stage(bench, policy_id, Path(stages_root), eval_seed)
        generations = generation_cache.cache_dir(stages_root, policy_id, seed, content=content) if share_generations else None
        ctx = EvalContext(stage.dir, policy_lm, eval_cfg.batch_size, mirror, Path(stages_root), eval_cfg.recompute,
                          generations, key, seed)
        label = f"benchmark {key} ({bench.name})"
        if eval_cfg.recompute:
            out[key] = outcome(key, bench, stage, lambda b=bench, c=ctx, st=stage: (recompute(st, b, c), False))
        else:
            out[key] = outcome(key, bench, stage, lambda b=bench, c=ctx, st=stage, lb=label: evaluated(st, b, c, content, lb))
    return out


def evaluated(stage: Stage, bench, ctx: EvalContext, content: str | None, label: str) -> tuple[dict, bool]:
    """The benchmark's stage run or reused, its result naming the policy content it was computed from. A stage key
    names the policy by its stage key, which a rebuilt policy keeps (retrained after its weights were found corrupt):
    a complete stage computed from another content is not reused."""
    if stage.complete and stage.problem() is None and stage.result().get("policy_content") != content:
        stage.discard(label, f"was computed from other weights of the policy (content "
                             f"{stage.result().get('policy_content')}, now {content})")
    return stage.run(lambda d: run_benchmark(bench, ctx) | {"policy_content": content}, label=label)
