"""The GPU acceptance command (harness/acceptance.py) in its CPU dry mode: every step runs on the tiny model through the
real trainers (TRL's reward, DPO and GRPO trainers, the project's PPO on FSDP2 in one process) and the evaluation on
the HF backend, and one JSON holds each step's time, tokens per second and the memory plan's figure; a step off the
plan or failing fails the command, naming it; a step is added by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from harness import acceptance
from harness.acceptance import StepOutput


@pytest.fixture(scope="module")
def dry_run(tiny_base, shared_stages, tmp_path_factory):
    out = tmp_path_factory.mktemp("acceptance")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "harness.acceptance", "--device", "cpu", "--out", str(out),
                           "--stages", str(shared_stages)], env=env, capture_output=True, text=True, timeout=900)
    return done, json.loads((out / "acceptance.json").read_text()), out


@pytest.mark.slow
def test_the_dry_mode_runs_every_step_and_writes_one_json(dry_run):
    done, report, out = dry_run
    assert done.returncode == 0, done.stderr[-3000:]
    steps = {r["step"]: r for r in report["steps"]}
    assert list(steps) == ["reward_model", "dpo", "ppo", "grpo", "eval", "rollout"] and report["ok"] and not report["failures"]
    for name, row in steps.items():
        assert "error" not in row, (name, row)
        assert row["seconds"] > 0 and row["tokens"] > 0 and row["tokens_per_s"] == pytest.approx(row["tokens"] / row["seconds"], rel=0.01)
        assert row["peak_gb"] is None  # no GPU memory on CPU ...
        if name != "rollout":  # (a throughput comparison, no stage of the plan)
            assert 0 < row["plan_gb"] < 1  # ... the plan's figure for the tiny model's stage alone
    # each trainer trained (the steps its sizes ask for), PPO sharded with FSDP2 in one process, scoring the reward
    # model the first step trained
    assert steps["reward_model"]["result"]["global_step"] == 4 and steps["dpo"]["result"]["global_step"] == 4
    assert steps["ppo"]["sharding"] == "fsdp" and steps["ppo"]["result"]["global_step"] == 2
    assert steps["ppo"]["result"]["processes"] == 1 and (out / "steps" / "ppo" / "model" / "model.safetensors").exists()
    assert steps["grpo"]["result"]["global_step"] == 2
    assert set(steps["ppo"]["plan"]["phases"]) == {"training", "rollout"} and set(steps["dpo"]["plan"]["phases"]) == {"training"}
    # the plan is made with the step's data: its longest sequence (prompt + new tokens for the generating steps)
    assert steps["reward_model"]["sequence"] <= 256 and steps["ppo"]["sequence"] > 16
    # the 20 GSM8k problems on the HF backend, with the reason printed
    assert steps["eval"]["result"] == {"backend": "hf", "problems": 20, "score": steps["eval"]["result"]["score"]}
    assert "vLLM needs a GPU" in (out / "acceptance.log").read_text()
    # the rollout row: HF generate timed on the 8 prompts, vLLM only on a GPU (the reason printed)
    rollout = steps["rollout"]["result"]
    assert rollout["prompts"] == 8 and rollout["hf_tokens_per_s"] > 0 and rollout["ratio"] is None
    assert "rollout: vLLM needs a GPU" in (out / "acceptance.log").read_text()
    # one line per step on the console, the table, and where the JSON is
    assert [line.split()[1] for line in done.stdout.splitlines() if " done in " in line] == list(steps)
    assert "tokens/s" in done.stdout and "no GPU memory measured on CPU" in done.stdout


def test_a_peak_off_the_plan_or_a_failed_step_fails_the_command():
    from harness.sweep.memory import MARGIN

    row = {"step": "dpo", "peak_gb": 10.0, "plan_gb": 10.0 / (1 + MARGIN) - 0.5, "unmeasured": None}
    assert "step dpo: measured peak 10.00 GB vs the plan's" in acceptance.verdict(row)
    assert acceptance.verdict({**row, "plan_gb": 10.0 / (1 + MARGIN) + 0.5}) is None  # within the margin
    assert acceptance.verdict({**row, "plan_gb": 10.0 / (1 - MARGIN) + 0.5}) is not None  # an overestimate too
    assert acceptance.verdict({**row, "unmeasured": "vLLM's own process"}) is None
    assert acceptance.verdict({"step": "ppo", "error": "RuntimeError: boom"}) == "step ppo failed: RuntimeError: boom"


def test_a_step_is_added_by_name_and_a_failing_one_fails_the_command(tiny_base, shared_stages, tmp_path, monkeypatch, capfd):
    ran = []

    def ratio(ctx):  # a made-up row
        ran.append(ctx.base.path)
        return StepOutput(None, None, tokens=100.0, tokens_counted="made up", result={"ratio": 3.0})

    monkeypatch.setitem(acceptance.STEPS, "example", ratio)
    assert acceptance.main(["--device", "cpu", "--out", str(tmp_path), "--stages", str(shared_stages),
                            "--steps", "example"]) == 0
    assert ran and json.loads((tmp_path / "acceptance.json").read_text())["steps"][0]["result"] == {"ratio": 3.0}

    def broken(ctx):
        raise RuntimeError("no engine")

    monkeypatch.setitem(acceptance.STEPS, "example", broken)
    assert acceptance.main(["--device", "cpu", "--out", str(tmp_path), "--stages", str(shared_stages),
                            "--steps", "example"]) == 1
    assert "FAILED: step example failed: RuntimeError: no engine" in capfd.readouterr().err
    assert acceptance.main(["--steps", "nosuch"]) == 2
    assert "error: unknown step(s) ['nosuch']" in capfd.readouterr().err
    assert acceptance.main(["--device", "cuda", "--model-path", str(tmp_path)]) == 2  # no GPU here
    assert "no GPU is visible" in capfd.readouterr().err
