"""Every command a user types ends a mistake they can fix in one `error:` line that names the fix, with exit status 2:
the traceback goes to the command's log (to the console too with HARNESS_DEBUG=1). Each entry point is run as a user
runs it (a subprocess, offline as every test is) on each kind of mistake, and its output lines are counted."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

# (entry point and arguments, what the one error line must say). {tmp}: the test's directory, also $HARNESS_HOME.
CASES = {
    "no sweep yet": (["harness.sweep", "status", "--latest"], r"no sweep yet under .* launch one with `python -m harness -m \+sweep=<name>`"),
    "missing sweep directory": (["harness.sweep", "status", "{tmp}/nowhere"], "{tmp}/nowhere is not a sweep directory"),
    "unknown sweep": (["harness.sweep", "plan", "table9"], "unknown sweep 'table9'; valid: .*'table1'"),
    "no results yet": (["harness.report", "--results", "{tmp}/nowhere"], r"no results index at .* run `python -m harness \.\.\.` first"),
    "README's describe, offline": (["harness.data", "describe", "dataset=hh_rlhf", "model=tulu2_13b"],
                                   "allenai/tulu-2-13b .*not on this machine.* python -m harness.data prefetch --models model=tulu2_13b"),
    "describe, offline without a mirror": (["harness.data", "describe", "dataset=hh_rlhf"],
                                           "the hub cannot be reached .* no mirror is set.*python -m harness.data prefetch dataset=hh_rlhf"),
    "describe, a missing data file": (["harness.data", "describe", "dataset=tiny", "dataset.files.train={tmp}/absent.jsonl"],
                                      "data file '{tmp}/absent.jsonl' does not exist"),
    "prefetch, offline": (["harness.data", "prefetch", "dataset=hh_rlhf", "paths.mirror={tmp}/mirror"],
                          "prefetch downloads allenai/tulu-2.5-preference-data .* on a machine with network access"),
    "verify, offline": (["harness.data", "verify", "dataset=hh_rlhf"],
                        "verify reads the commits and files of every source from the hub, which this machine cannot reach"),
    "prefetch, an unknown option": (["harness.data", "prefetch", "model=llama9", "paths.mirror={tmp}/mirror"],
                                    "Could not find 'model/llama9' Available options in 'model': .*tulu2_13b"),
    "a model without its weights": (["harness", "model=qwen25_05b", "eval=smoke", "tracking=none"],
                                    "Qwen/Qwen2.5-0.5B-Instruct .*not on this machine.* prefetch --models model=qwen25_05b"),
    "a model not in the mirror": (["harness", "model=qwen25_05b", "eval=smoke", "tracking=none", "paths.mirror={tmp}/mirror"],
                                  "not in the offline mirror {tmp}/mirror .* prefetch --models model=qwen25_05b paths.mirror={tmp}/mirror"),
}


def command(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp / "mirror").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", *(a.format(tmp=tmp) for a in args)], cwd=tmp, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "HARNESS_HOME": str(tmp), "PYTHONPATH": str(ROOT),
                               "HF_HUB_CACHE": str(tmp / "hf-cache"), **env})  # no model cached here


@pytest.mark.parametrize("case", CASES)
def test_a_user_error_is_one_line_naming_the_fix_and_exit_2(case, tmp_path):
    args, says = CASES[case]
    out = command(args, tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    stderr = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(stderr) == 1 and stderr[0].startswith("error: "), out.stderr[-3000:]
    assert re.search(says.format(tmp=re.escape(str(tmp_path))), stderr[0]), stderr[0]
    assert len(out.stdout.splitlines()) <= 1, out.stdout  # at most the command's first line of progress
    assert "Traceback" not in out.stdout + out.stderr


def test_the_traceback_goes_to_the_log_or_with_harness_debug_to_the_console(tmp_path):
    args, _ = CASES["no sweep yet"]
    quiet = command(args, tmp_path)
    log = tmp_path / "results" / "logs" / "harness.sweep.log"
    assert f"(traceback: {log})" in quiet.stderr and "Traceback" not in quiet.stderr
    assert "Traceback" in log.read_text() and "NoSweep: no sweep yet" in log.read_text()
    loud = command(args, tmp_path, HARNESS_DEBUG="1")
    assert loud.returncode == 2 and "Traceback" in loud.stderr and loud.stderr.splitlines()[-1].startswith("error: no sweep")


def test_an_unknown_run_is_one_line_too(tmp_path):
    from harness.records.results import index_row, upsert_index

    upsert_index(tmp_path / "results", index_row({
        "run_id": "tiny-tiny-dpo-none-none-s42-0123abcd", "config_hash": "0123abcd" * 2, "recorded_at": "2026-12-06",
        "axes": {"model": "tiny", "dataset": "tiny", "algorithm": "dpo", "reward_model": "none", "prompts": "none",
                 "eval_suite": "smoke"},
        "benchmarks": {"gsm8k": {"score": 50.0}}, "categories": {}, "average": None, "result_path": "-",
        "provenance": {"git_commit": "-", "seed": 42, "versions": {}, "chat_template": "tulu"}}))
    out = command(["harness.compare", "tiny-tiny-ipo"], tmp_path)
    assert out.returncode == 2 and out.stdout == "", out.stderr[-3000:]
    [line] = out.stderr.splitlines()
    assert line.startswith("error: run 'tiny-tiny-ipo' names 0 recorded runs"), line


def entry_points() -> list[Path]:
    """The commands a user types: `python -m harness[.<package>]`, `python -m harness.compare`, `... .acceptance`."""
    return sorted([*(ROOT / "harness").rglob("__main__.py"), *(ROOT / "harness").glob("compare.py"),
                   *(ROOT / "harness").glob("acceptance.py")])


def main_of(path: Path) -> ast.FunctionDef:
    """The module's `main`: defined there, or imported from another module of the package."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            return node
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == "main" for a in node.names):
            return main_of(ROOT / (node.module.replace(".", "/") + ".py"))
    raise AssertionError(f"{path} has no main")


def test_every_command_goes_through_the_shared_front_door():
    """Each `main` is wrapped by harness.cli.command (`python -m harness`, a Hydra app, reports its own in the same
    form: tests/test_exit_status.py), so a command added later gets the same errors with one line."""
    assert {p.relative_to(ROOT).as_posix() for p in entry_points()} >= {
        "harness/__main__.py", "harness/data/__main__.py", "harness/sweep/__main__.py", "harness/report/__main__.py",
        "harness/compare.py", "harness/acceptance.py"}
    for path in entry_points():
        decorators = [ast.unparse(d) for d in main_of(path).decorator_list]
        if path == ROOT / "harness" / "__main__.py":
            assert decorators[0].startswith("hydra.main"), decorators
        else:
            assert any(d.startswith("cli.command(") for d in decorators), (path, decorators)
