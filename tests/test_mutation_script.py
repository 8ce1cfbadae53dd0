"""benchmarks/mutation.py (the mutation-testing command): its module map names real modules, functions and fast
tests, it picks modules by path and refuses one it does not map, and its report counts what a run found (the run
itself takes hours: not here)."""

from __future__ import annotations

import ast
import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import mutation  # noqa: E402


def defined(module: str) -> set[str]:
    """Top-level functions and Class.method names of a module."""
    tree = ast.parse((ROOT / module).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, ast.FunctionDef)}
    return names


def test_every_mapped_module_function_and_test_exists():
    for module, (tests, functions) in mutation.MODULES.items():
        assert (ROOT / module).is_file(), module
        assert tests and all((ROOT / t).is_file() for t in tests), (module, tests)
        assert set(functions or ()) <= defined(module), (module, set(functions) - defined(module))


def test_modules_are_picked_by_path_or_folder_and_an_unmapped_one_is_refused(capsys):
    assert mutation.pick(["harness/sweep/cost.py"]) == ["harness/sweep/cost.py"]
    assert set(mutation.pick(["harness/records"])) == {m for m in mutation.MODULES if m.startswith("harness/records/")}
    with pytest.raises(SystemExit, match="harness/chat.py.*not in benchmarks/mutation.py MODULES"):
        mutation.pick(["harness/chat.py"])
    assert mutation.mutant_patterns("harness/train/ppo.py", ["gae", "PPOTrainer.step"]) == [
        "harness.train.ppo.x_gae__mutmut_*", "harness.train.ppo.x\u01c1PPOTrainer\u01c1step__mutmut_*"]


def test_the_report_counts_killed_survived_and_equivalent_mutants(tmp_path, monkeypatch):
    diff = "--- a\n+++ b\n@@\n-    return 0.0\n+    return 1.0"
    results = {"harness/sweep/cost.py": {
        "tests": ["tests/test_sweep_cost.py"], "functions": None, "commit": "abc",
        "counts": {"killed": 7, "timeout": 1, "survived": 2},
        "survivors": {"harness.sweep.cost.x_gpu_hours__mutmut_1": {"status": "survived", "diff": diff},
                      "harness.sweep.cost.x_gpu_hours__mutmut_2": {"status": "survived", "diff": diff.replace("1.0", "2.0")},
                      "harness.sweep.cost.x_gpu_hours__mutmut_3": {"status": "survived", "diff": diff.replace("1.0", "3.0")}}}}
    results["harness/sweep/cost.py"]["counts"]["survived"] = 3
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "equivalent.toml").write_text(
        '[[equivalent]]\nfunction = "harness.sweep.cost.x_gpu_hours"\nmutated = "return 2.0"\nreason = "never read"\n'
        '[[equivalent]]\nfunction = "harness.sweep.cost.x_gpu_hours"\nmutated = "return 3.0"\nkilled_by = "tests/x.py"\n')
    for name, file in (("RESULTS", "results.json"), ("REPORT", "report.md"), ("EQUIVALENT", "equivalent.toml")):
        monkeypatch.setattr(mutation, name, tmp_path / file)
    assert mutation.main(["--report"]) == 0
    report = (tmp_path / "report.md").read_text()
    # 9 killed (a timeout, and one by a slow test), 1 survived, 1 equivalent: 9 / 10 of the non-equivalent
    assert "| `harness/sweep/cost.py` | 11 | 9 | 1 | 0 | 1 | 90% |" in report
    assert "x_gpu_hours__mutmut_1" in report and "equivalent `harness.sweep.cost.x_gpu_hours__mutmut_2`" in report
    assert "killed by a slow test, checked by hand: `harness.sweep.cost.x_gpu_hours__mutmut_3`" in report
