"""eval.seed: a seed sweep with `eval.seed=${seed}` gives each seed its own sampled evaluations (HumanEval+, MBPP+ at
temperature 0.8), reproducible per seed, while greedy benchmarks stay shared; unset, the stages are as before."""

from __future__ import annotations

from omegaconf import open_dict

from harness.eval.items import _rows
from harness.eval.suite import run_suite
from harness.planning import planned_stages


def eval_keys(cfg) -> dict[str, str]:
    return {s.spec["benchmark"]["name"]: s.key for s in planned_stages(cfg) if s.kind == "eval"}


def test_a_seed_sweep_of_sft_with_eval_seed_has_distinct_sampled_stages(run_config):
    sweep = {s: eval_keys(run_config("algorithm=none", f"seed={s}", "eval.seed=${seed}")) for s in (1, 2)}
    plain = {s: eval_keys(run_config("algorithm=none", f"seed={s}")) for s in (1, 2)}
    benchmarks = run_config("algorithm=none").eval.benchmarks
    sampled = {benchmarks.humaneval_plus.name, benchmarks.mbpp_plus.name}  # the two sampled at temperature 0.8
    assert {b for b in sweep[1] if sweep[1][b] != sweep[2][b]} == sampled  # greedy benchmarks shared by the seeds
    assert plain[1] == plain[2]  # without eval.seed a seed sweep of SFT evaluates once, as before
    assert {b for b in plain[1] if plain[1][b] != sweep[1][b]} == sampled  # unseeded keys are unchanged
    spec = next(s.spec for s in planned_stages(run_config("algorithm=none", "eval.seed=7")) if s.kind == "eval"
                and s.spec["benchmark"]["name"] in sampled)
    assert spec["seed"] == 7


def samples(cfg, policy, stages) -> list[str]:
    out = run_suite(cfg.eval, policy, {"path": policy.path}, cfg.model, str(stages))
    assert "error" not in out["humaneval_plus"], out
    return [r["program"] for r in _rows(out["humaneval_plus"]["dir"]) if "program" in r]


def test_the_evaluation_seed_makes_sampling_reproducible_and_seed_dependent(run_config, tiny_base, tmp_path):
    def humaneval(seed: int):
        cfg = run_config("algorithm=none", "tracking=none", f"eval.seed={seed}")
        with open_dict(cfg):
            cfg.eval.benchmarks = {"humaneval_plus": cfg.eval.benchmarks.humaneval_plus}
            cfg.eval.benchmarks.humaneval_plus.generation.max_new_tokens = 12
        return cfg

    first = samples(humaneval(1), tiny_base, tmp_path / "a")
    again = samples(humaneval(1), tiny_base, tmp_path / "b")  # another store: sampled again, not reused
    other = samples(humaneval(2), tiny_base, tmp_path / "a")
    assert len(first) == 4 and first == again and other != first
