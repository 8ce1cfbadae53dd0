"""The console of `python -m harness`: a line per stage and the summary; everything else in the run's log file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from harness.config.schema import CATEGORIES


def cli(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *overrides], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_default_run_prints_a_line_per_stage_and_the_summary_and_logs_the_rest(tmp_path, shared_stages, tiny_base):
    out = cli(f"paths.home={tmp_path}", f"paths.stages={shared_stages}")
    assert out.returncode == 0, out.stderr[-3000:]
    console = (out.stdout + out.stderr).splitlines()
    assert len(console) <= 40, "\n".join(console)
    result_path = next(Path(p) for p in tmp_path.glob("results/runs/*/result.json"))
    result = json.loads(result_path.read_text())
    stage_lines = [x for x in console if x.startswith("[harness] ")]
    for key, bench in result["benchmarks"].items():  # one line per benchmark stage: state, what, where
        assert sum(bench["dir"] in x and f"benchmark {key} " in x for x in stage_lines) == 1, key
    assert any(result["stages"]["policy"]["dir"] in x for x in stage_lines)
    header = next(x for x in console if "factuality" in x and "average" in x).split()
    assert header == [*CATEGORIES, "average"]  # full names, not "inst_followi"

    log = (result_path.parent / "run.log").read_text()
    assert "lm_eval" in log  # library logs ...
    assert "Running generate_until requests" in log  # ... third-party progress bars ...
    assert "Running generate_until requests" not in out.stdout + out.stderr
    assert all(x in log for x in stage_lines)  # ... and the console's own lines
    assert f"result: {result_path}" in log


def test_a_failed_run_names_its_error_and_log_holds_the_traceback(tmp_path, shared_stages):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "chosen": [{"role": "assistant", "content": "a"}]}) + "\n")
    out = cli(f"paths.home={tmp_path}", f"paths.stages={shared_stages}", "tracking=none", "eval=smoke",
              f"dataset.files.train={bad}", "dataset.eval_split=null")
    assert out.returncode == 2  # a mistake in the data the user can fix: one `error:` line naming the log
    failed = next(x for x in out.stderr.splitlines() if x.startswith("error:"))
    log_path = Path(failed.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log_path.parent.parent == tmp_path / "results" / "runs"
    log = log_path.read_text()
    assert "Traceback (most recent call last)" in log and "missing column(s) ['rejected']" in log
