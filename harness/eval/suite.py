"""Run a suite: every benchmark is its own stage (keyed by the policy and that benchmark's regime), so a new
benchmark or a failed judge never reruns the others. One benchmark failing is recorded; the rest still finish."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from harness.eval import lm_eval_runner
from harness.models import ModelRef, load_causal_lm, load_tokenizer
from harness.stages import Stage

log = logging.getLogger(__name__)

RUNNERS = {"lm_eval": lm_eval_runner.run}


class LazyPolicy:
    """Loads the policy (as an lm-eval model) only if some benchmark still needs to run."""

    def __init__(self, ref: ModelRef, model_cfg, batch_size: int, wrap=None):
        self.ref, self.model_cfg, self.batch_size, self._lm = ref, model_cfg, batch_size, None
        self.wrap = wrap  # e.g. harness.bon: an lm-eval LM around the policy's (best-of-N)

    @property
    def lm(self):
        if self._lm is None:
            from lm_eval.models.huggingface import HFLM

            tok = load_tokenizer(self.ref, self.model_cfg.chat_template)
            model = load_causal_lm(self.ref, self.model_cfg.dtype)
            self._lm = HFLM(pretrained=model, tokenizer=tok, batch_size=self.batch_size)
            if self.wrap is not None:
                self._lm = self.wrap(self._lm)
        return self._lm


def benchmark_stage(bench, policy_id: dict, root: Path) -> Stage:
    return Stage("eval", {"policy": policy_id, "benchmark": OmegaConf.to_container(bench, resolve=True)}, root)


def run_suite(eval_cfg, policy: ModelRef, policy_id: dict, model_cfg, stages_root: str, wrap=None) -> dict[str, dict]:
    """Benchmark key -> {score, metrics, n, samples, dir, reused} or {error} when it failed."""
    lazy = LazyPolicy(policy, model_cfg, eval_cfg.batch_size, wrap)
    out = {}
    for key, bench in eval_cfg.benchmarks.items():
        if bench.runner not in RUNNERS:
            raise ValueError(f"benchmark {key!r}: unknown runner {bench.runner!r}; valid: {sorted(RUNNERS)}")
        stage = benchmark_stage(bench, policy_id, Path(stages_root))
        try:
            result, reused = stage.run(lambda d, b=bench: RUNNERS[b.runner](b, lazy.lm, d, eval_cfg.batch_size),
                                       label=f"benchmark {key} ({bench.name})")
            out[key] = {**result, "category": bench.category, "name": bench.name, "dir": str(stage.dir), "reused": reused}
        except Exception as exc:  # recorded, the suite goes on
            log.error("benchmark %s failed: %s", key, exc)
            print(f"[harness] benchmark {key} FAILED: {type(exc).__name__}: {exc}")
            out[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                        "category": bench.category, "name": bench.name, "dir": str(stage.dir)}
    return out
