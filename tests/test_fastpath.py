"""A finished run answers from its record, before the ML stack is imported; anything that changes the numbers does
not take that path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from harness.pipeline import run
from harness.records.fastpath import complete_result, finished
from harness.records.stages import MARKER

HEAVY = ("torch", "transformers", "trl", "lm_eval", "mlflow", "datasets")
OVERRIDES = ("algorithm=dpo", "eval=smoke", "tracking=none")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, shared_stages):
    """A real DPO run on the tiny model, evaluated on the smoke suite and recorded."""
    from conftest import compose

    home = tmp_path_factory.mktemp("fast_home")
    overrides = (f"paths.home={home}", f"paths.stages={shared_stages}", *OVERRIDES)
    result = run(compose(*overrides))
    return overrides, result


def cli_in_subprocess(overrides) -> tuple[str, list[str]]:
    """`python -m harness <overrides>` in a fresh interpreter; its output and the heavy libraries it imported."""
    script = (
        "import json, runpy, sys\n"
        f"sys.argv = ['harness', *{list(overrides)!r}]\n"
        "try:\n    runpy.run_module('harness', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print('IMPORTED', json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("IMPORTED "))
    return out.stdout, json.loads(line.removeprefix("IMPORTED "))


def test_rerun_of_a_finished_run_imports_no_ml_library_and_prints_its_summary(recorded):
    overrides, result = recorded
    stdout, imported = cli_in_subprocess(overrides)
    assert imported == []
    assert f"run {result['run_id']} is complete" in stdout
    assert f"result: {result['result_path']}" in stdout
    stage_lines = [line.split() for line in stdout.splitlines() if line.strip().startswith("stage ")]
    assert {line[1] for line in stage_lines} == set(result["stages"]) and {line[2] for line in stage_lines} == {"reused"}


def test_a_rerun_says_every_stage_was_reused(recorded, capsys):
    """The record keeps what the first invocation did (the model built, the policy trained); a rerun did neither."""
    from harness.records.fastpath import report_finished

    _, result = recorded
    report_finished(result | {"stages": {k: v | {"reused": False} for k, v in result["stages"].items()}})
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("stage ")]
    assert [line[1:3] for line in lines] == [[name, "reused"] for name in result["stages"]]


def test_a_changed_config_takes_the_full_path(recorded, run_config):
    overrides, result = recorded
    from conftest import compose

    assert finished(compose(*overrides))["run_id"] == result["run_id"]
    assert finished(compose(*overrides, "tracking=mlflow"))["run_id"] == result["run_id"]  # logging is not identity
    assert finished(compose(*overrides, "seed=43")) is None
    assert finished(compose(*overrides, "algorithm.beta=0.2")) is None
    assert finished(compose(*overrides, "eval=tiny")) is None
    assert finished(compose(*overrides, "eval.recompute=true")) is None
    assert finished(compose(*overrides, "dry_run=true")) is None


def test_a_stage_removed_or_a_failed_benchmark_takes_the_full_path(recorded, tmp_path):
    _, result = recorded
    results = Path(result["result_path"]).parents[2]
    assert complete_result(results, result["run_id"], result["config_hash"]) is not None
    assert complete_result(results, result["run_id"], "0" * 16) is None

    marker = Path(result["benchmarks"]["gsm8k"]["dir"]) / MARKER
    moved = marker.with_name("COMPLETE.moved")
    marker.rename(moved)
    try:
        assert complete_result(results, result["run_id"], result["config_hash"]) is None
    finally:
        moved.rename(marker)

    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("hydra", "*.lock"))
    path = copy / "runs" / result["run_id"] / "result.json"
    failed = json.loads(path.read_text())
    failed["benchmarks"]["gsm8k"] = {"error": "RuntimeError: judge down", "category": "reasoning", "dir": "x"}
    path.write_text(json.dumps(failed))
    assert complete_result(copy, result["run_id"], result["config_hash"]) is None

    other = json.loads(path.read_text()) | {"benchmarks": result["benchmarks"]}
    other["provenance"]["versions"]["torch"] = "0.0.1"
    path.write_text(json.dumps(other))
    assert complete_result(copy, result["run_id"], result["config_hash"]) is None


def test_verify_stages_full_verifies_a_finished_run_too(recorded):
    """reliability-2.md probe 6: `verify_stages=full` was ignored for a finished run (the fast path said "complete" and
    verified nothing). The fast path now checks every stage as `verify_stages` asks, and a marker without digests."""
    from conftest import compose

    overrides, result = recorded
    samples = Path(result["benchmarks"]["gsm8k"]["dir"]) / "samples.jsonl"
    marker = Path(result["benchmarks"]["gsm8k"]["dir"]) / MARKER
    whole, vouching = samples.read_bytes(), marker.read_text()
    try:
        written = samples.stat()
        samples.write_bytes(bytes([whole[0] ^ 0x01]) + whole[1:])  # one flipped bit in place: size and time kept
        os.utime(samples, ns=(written.st_atime_ns, written.st_mtime_ns))
        assert finished(compose(*overrides))["run_id"] == result["run_id"]  # sizes (hashes of files written since)
        assert finished(compose(*overrides, "verify_stages=full")) is None  # the full path rebuilds it, naming it
        samples.write_bytes(whole)
        marker.write_text("{}")  # a marker that vouches for nothing
        assert finished(compose(*overrides)) is None
    finally:
        samples.write_bytes(whole)
        marker.write_text(vouching)
    assert finished(compose(*overrides, "verify_stages=full"))["run_id"] == result["run_id"]


def test_a_finished_run_whose_policy_was_rebuilt_with_other_weights_takes_the_full_path(recorded):
    """Its scores came from the policy's old weights (each benchmark records the content it was computed from)."""
    _, result = recorded
    results = Path(result["result_path"]).parents[2]
    marker = Path(result["stages"]["policy"]["dir"]) / MARKER
    vouching = marker.read_text()
    assert complete_result(results, result["run_id"], result["config_hash"]) is not None
    try:
        rebuilt = json.loads(vouching)
        weights = next(k for k in rebuilt["files"] if k.endswith(".safetensors"))
        rebuilt["files"][weights]["sha256"] = "0" * 64  # as COMPLETE would say after a rebuild with other weights
        marker.write_text(json.dumps(rebuilt))
        assert complete_result(results, result["run_id"], result["config_hash"]) is None
    finally:
        marker.write_text(vouching)
