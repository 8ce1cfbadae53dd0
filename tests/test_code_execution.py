"""HumanEval+ / MBPP+ programs scored as open-instruct scored them (allenai/open-instruct@b6737f623
eval/codex_humaneval/execution.py, eval/mbpp/execution.py): known answers for exits, `__main__` blocks, the time limit
counted from the program's first line, the disabled functions, and the programs' composition."""

from __future__ import annotations

import re

import pytest

from harness.eval.code import PROGRAMS, fields, run_sample
from harness.eval.sandbox import Limits

LIMITS = Limits(timeout_s=3.0, memory_mb=1024)
PROBLEM = {"task_id": "HumanEval/0", "entry_point": "add", "prompt": "def add(a, b):\n    \"\"\"a + b\"\"\"\n",
           "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}


def humaneval(completion: str) -> str:
    return PROGRAMS["humaneval"].format(**fields(PROBLEM), completion=completion)


def ran_seconds(stderr: str) -> float:
    return float(re.search(r"the program ran ([0-9.]+) s", stderr).group(1))


def test_a_program_passes_when_its_tests_run_to_the_end():
    assert run_sample(humaneval("    return a + b\n"), LIMITS).passed
    wrong = run_sample(humaneval("    return a - b\n"), LIMITS)
    assert wrong.status == "failed" and "failed: AssertionError" in wrong.stderr


@pytest.mark.parametrize("stop", ["import sys\nsys.exit(0)", "exit()", "quit()", "import os\nos._exit(0)",
                                  "raise SystemExit(0)"])
def test_exiting_before_a_failing_test_fails(stop):
    """Exit status 0 is not a pass: only a program that ran to its end is (SystemExit is an exception there; exit
    and quit are disabled; a process gone before reporting never passed)."""
    program = f"{stop}\nassert 1 + 1 == 3\n"
    outcome = run_sample(program, LIMITS)
    assert outcome.status == "failed", (stop, outcome)


def test_a_main_block_is_not_run():
    """exec with fresh globals: `__name__` is not "__main__", so a failing `__main__` block does not fail the tests."""
    completion = "    return a + b\n\nif __name__ == '__main__':\n    assert add(1, 1) == 3\n"
    outcome = run_sample(humaneval(completion), LIMITS)
    assert outcome.passed, outcome.stderr


def test_the_time_limit_counts_from_the_first_line_of_the_program():
    """A program using 90% of its limit passes although interpreter start, sandbox setup and numpy's import (done
    before the clock starts: the program's own `import numpy` is free) made the whole run longer than the limit; one that outlives its limit is timed out, and one that swallows the timeout is
    stopped a second later (open-instruct's join(timeout + 1))."""
    limit = Limits(timeout_s=2.0, memory_mb=1024)
    slow = run_sample("import time, numpy\ntime.sleep(1.8)\nassert numpy.sum([1, 2]) == 3\n", limit)
    assert slow.passed, slow.stderr
    assert 1.8 <= ran_seconds(slow.stderr) < limit.timeout_s < slow.seconds
    late = run_sample("import time\ntime.sleep(4)\n", limit)
    assert late.status == "timeout" and "timed out" in late.stderr
    stubborn = run_sample("import time\nwhile True:\n    try:\n        time.sleep(10)\n    except Exception:\n        pass\n", limit)
    assert stubborn.status == "timeout" and "Timeout (" in stubborn.stderr


def test_what_open_instruct_disabled_fails():
    """reliability_guard's disabled functions raise (os.getcwd, subprocess.Popen); printing is harmless and reading
    stdin fails."""
    assert run_sample("import os\nos.getcwd()\n", LIMITS).status == "failed"
    assert run_sample("import subprocess\nsubprocess.run(['true'])\n", LIMITS).status == "failed"
    assert run_sample("print('x' * 1000)\nassert True\n", LIMITS).passed
    assert run_sample("input()\n", LIMITS).status == "failed"


def test_programs_are_composed_as_open_instructs():
    """HumanEval: prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"; MBPP: completion + "\\n" + test,
    without evalplus's test_imports (so a test that needs an import the completion lacks fails there too)."""
    assert humaneval("    return a + b\n") == (PROBLEM["prompt"] + "    return a + b\n" + "\n" + PROBLEM["test"] + "\n"
                                              + "check(add)")
    row = {"task_id": 2, "code": "def area(r):\n    return math.pi * r * r", "test_imports": ["import math"],
           "test": "assert abs(area(1) - math.pi) < 1e-9\n"}
    completion = "def area(r):\n    return 3.141592653589793 * r * r\n"
    program = PROGRAMS["mbpp"].format(**fields(row), completion=completion)
    assert program == completion + "\n" + row["test"]
    assert run_sample(program, LIMITS).status == "failed"  # NameError: math
