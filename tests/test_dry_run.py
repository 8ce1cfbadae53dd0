"""`dry_run=true` makes every check a real run makes, then says which stages the run would compute and which it would
reuse, with their planned GPU-hours and memory per GPU, and computes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.errors import ConfigError
from harness.pipeline import run

SMOKE = ("eval=smoke", "tracking=none", "algorithm.max_steps=2")


def stage_lines(out: str) -> list[list[str]]:
    kinds = ("model", "policy", "reward_model", "eval")
    return [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in kinds]


def test_a_dry_run_lists_the_stages_it_would_run_then_those_it_would_reuse(run_config, capsys):
    cfg = run_config(*SMOKE, "seed=7")  # a policy no other test trains
    before = run(run_config(*SMOKE, "seed=7", "dry_run=true"))
    assert before["dry_run"] and [r["kind"] for r in before["stages"]] == ["model", "policy", "eval"]
    policy = before["stages"][1]
    assert not policy["complete"] and policy["gpu_hours"] > 0 and before["gpu_hours_remaining"] >= policy["gpu_hours"]
    out = capsys.readouterr().out
    assert "every check a run makes passed" in out
    assert [line[:3] for line in stage_lines(out)][1:] == [["policy", policy["key"], "run"], ["eval", before["stages"][2]["key"], "run"]]
    assert not Path(policy["dir"]).exists()  # nothing computed

    done = run(cfg)  # the real run computes exactly those stages
    assert done["stages"]["policy"]["key"] == policy["key"] and done["benchmarks"]["gsm8k"]["dir"] == before["stages"][2]["dir"]
    after = run(run_config(*SMOKE, "seed=7", "dry_run=true"))
    assert [r["complete"] for r in after["stages"]] == [True, True, True] and after["gpu_hours_remaining"] == 0
    assert {line[2] for line in stage_lines(capsys.readouterr().out)} == {"reuse"}


def test_a_dry_run_refuses_what_a_run_refuses(run_config, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judged = ("eval=tiny", "eval.benchmarks.xstest.judges.refusal.kind=openai")  # an API judge, its key not set
    with pytest.raises(ConfigError, match="reads its API key from the environment variable OPENAI_API_KEY"):
        run(run_config(*judged, "tracking=none", "dry_run=true"))
    with pytest.raises(ConfigError, match="algorithm=ppo needs a reward model"):
        run(run_config("algorithm=ppo", "reward_model=none", "dry_run=true"))


def test_a_dry_run_refuses_a_negative_beta(run_config):
    """algorithm.beta=-1 fails a real run; the dry run goes through the same checks (harness.checks.check_numbers)."""
    with pytest.raises(ConfigError, match=r"algorithm\.beta=-1"):
        run(run_config("tracking=none", "dry_run=true", "algorithm.beta=-1"))
