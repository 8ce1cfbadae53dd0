"""benchmarks/eval_throughput.py runs: the harness and lm-eval directly on the same model and task, one timed row."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_eval_throughput_script_times_both_paths(tiny_base, shared_stages):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "benchmarks/eval_throughput.py", "--benchmarks", "gsm8k", "--repeats", "1",
                          "--stages", str(shared_stages)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    row = next(line.split() for line in out.stdout.splitlines() if line.startswith("gsm8k"))
    # the tiny suite's GSM8k: 4 problems (conf/eval/tiny.yaml, limit: 4), one generation request each
    assert row[1] == "4"
    assert all(float(x) > 0 for x in row[2:]), row
