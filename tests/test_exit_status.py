"""Exit status tells the truth: a run with a failed benchmark exits non-zero and names it, a sweep with one exits
non-zero, and a mistake the user can fix is one `error:` line and exit status 2, with no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

# a benchmark that fails at once, before any model is loaded: its data file does not exist
MISSING_DATA = ["algorithm=none", "eval=smoke", "tracking=none", "eval.benchmarks.gsm8k.files.test=benchmarks/gsm8k/absent.jsonl"]


def harness(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_a_run_with_a_failed_benchmark_exits_3_and_names_it(tmp_path, shared_stages, tiny_base):
    out = harness(*MISSING_DATA, f"paths.home={tmp_path}", f"paths.stages={shared_stages}")
    assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-2000:]
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "gsm8k" in error[0] and "absent.jsonl" in error[0], out.stderr[-2000:]
    assert (tmp_path / "results" / "index.jsonl").exists()  # still recorded


def test_a_sweep_with_a_failed_benchmark_exits_non_zero(tmp_path, shared_stages, tiny_base):
    out = harness("-m", *MISSING_DATA, f"paths.home={tmp_path}", f"paths.stages={shared_stages}",
                  f"hydra.sweep.dir={tmp_path}/sweep")
    assert out.returncode != 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert [r["state"] for r in summary["runs"]] == ["failed"]
    assert "gsm8k" in (tmp_path / "sweep" / "summary.txt").read_text()


def test_a_user_error_is_one_error_line_and_exit_2(tmp_path):
    out = harness("algorithm=ppo", "reward_model=none", f"paths.home={tmp_path}", "tracking=none",
                  f"hydra.run.dir={tmp_path}/hydra", timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "HYDRA_FULL_ERROR" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.strip()] == [
        line for line in out.stderr.splitlines() if line.startswith("error: algorithm=ppo needs a reward model")]
    # a run in the background leaves the reason in its log
    assert "algorithm=ppo needs a reward model" in (tmp_path / "hydra" / "harness.log").read_text()
