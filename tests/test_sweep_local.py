"""The default (local) launcher: a multirun in this machine's process, deduplicated, summarised, and resumable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_local_sweep_summarises_and_skips_complete_runs_on_rerun(tmp_path, shared_stages, tiny_base):
    """Two seeds of the SFT model: two runs sharing one evaluation (greedy decoding does not read the seed); the
    second identical command finds both recorded and launches nothing."""
    args = [sys.executable, "-m", "harness", "-m", "algorithm=none", "seed=1,2", f"paths.home={tmp_path}",
            f"paths.stages={shared_stages}", "tracking=none", "eval.benchmarks.gsm8k.limit=1",
            "eval.benchmarks.gsm8k.generation.max_new_tokens=8"]
    multirun = tmp_path / "results" / "hydra" / "multirun" / "2026-01-01"  # where sweeps go by default
    first = subprocess.run([*args, f"hydra.sweep.dir={multirun}/sweep1"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary = json.loads((multirun / "sweep1" / "summary.json").read_text())
    assert [r["state"] for r in summary["runs"]] == ["complete", "complete"]
    results = [json.loads((tmp_path / "results" / "runs" / r["run_id"] / "result.json").read_text()) for r in summary["runs"]]
    evals = [r["benchmarks"]["gsm8k"] for r in results]
    assert evals[0]["dir"] == evals[1]["dir"] and evals[1]["reused"]

    second = subprocess.run([*args, f"hydra.sweep.dir={multirun}/sweep2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "2 unique runs; 2 already complete (not relaunched), 0 to run" in second.stdout
    rerun = json.loads((multirun / "sweep2" / "summary.json").read_text())
    assert [r["ran"] for r in rerun["runs"]] == [False, False]
    assert not (multirun / "sweep2" / "0").exists()  # no job directory: nothing ran

    # `status --latest` reads the newest sweep under results/ (sweep2), and finds both runs complete
    status = subprocess.run([sys.executable, "-m", "harness.sweep", "status", "--latest", "--results", str(tmp_path / "results")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-3000:]
    assert f"({multirun / 'sweep2'}): 2 grid points -> 2 runs: 2 complete" in status.stdout

    # rerun_complete=true launches complete runs again (their stages are reused, so nothing is trained or scored)
    forced = subprocess.run([*args, f"hydra.sweep.dir={multirun}/sweep3", "hydra.launcher.rerun_complete=true"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert "2 unique runs; 0 already complete (not relaunched), 2 to run" in forced.stdout
    again = json.loads((multirun / "sweep3" / "summary.json").read_text())
    assert [(r["ran"], r["state"]) for r in again["runs"]] == [(True, "complete"), (True, "complete")]
