"""Mutation testing of the code that decides published numbers (issue 27): mutmut 3 changes one thing at a time in a
module (a sign, a comparison, a constant, an argument) and runs that module's fast tests against each change; a change
no test notices (a surviving mutant) is a missing test, or an equivalent change (listed, with the reason, in
benchmarks/mutation-equivalent.toml). Not in CI: a module takes minutes to hours on 2 cores.

    python benchmarks/mutation.py                           # every module of MODULES, in order
    python benchmarks/mutation.py harness/train/ppo.py      # just these modules (paths or prefixes: harness/eval)
    python benchmarks/mutation.py --changed main            # the modules a change touched (git diff main)
    python benchmarks/mutation.py --survivors harness/eval  # only the mutants that survived last time (tests added)
    python benchmarks/mutation.py --report                  # only rewrite the report from the results kept

Each module runs in a fresh scratch copy of the working tree (.mutation/<module>/, git-ignored), against the tests
MODULES maps it to: fast tests only, never the training runs (mutmut runs,
for each mutant, only the mapped tests that execute the mutated function). Its result is kept in
benchmarks/mutation-results.json and the report, benchmarks/mutation-report.md, counts per module the mutants killed,
survived, equivalent and not reached by any mapped test, and lists every surviving one with its diff.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"
RESULTS = ROOT / "benchmarks" / "mutation-results.json"
REPORT = ROOT / "benchmarks" / "mutation-report.md"
EQUIVALENT = ROOT / "benchmarks" / "mutation-equivalent.toml"
# What a mutant's tests need besides the package (conf/sweep links to sweeps/).
COPIED = ("harness", "conf", "sweeps", "hydra_plugins", "tests", "pyproject.toml")

# Module -> its fast tests, and the functions mutated by default (None: all of them; `--all-functions` mutates every
# function of every module named), in order of how directly the module decides a published number. ppo.py's trainer
# plumbing (loading, sampling, checkpoints) is exercised by the training tests only, which take minutes per mutant.
PPO_MATH = ["masked_mean", "loss_normaliser", "masked_whiten", "eos_trick", "per_token_rewards", "gae", "policy_loss",
            "value_loss", "PPOTrainer.advantages", "PPOTrainer.update", "PPOTrainer.refresh",
            "PPOTrainer.backward_minibatch", "PPOTrainer.clip_gradients", "PPOTrainer.step"]
MODULES: dict[str, tuple[list[str], list[str] | None]] = {
    "harness/train/ppo.py": (["tests/test_ppo_math.py", "tests/test_ppo_known_answers.py"], PPO_MATH),
    "harness/eval/categories.py": (["tests/test_eval_scoring.py"], None),
    "harness/eval/alpacaeval.py": (["tests/test_eval_known_answers.py", "tests/test_eval_scoring.py"], None),
    "harness/eval/truthfulqa.py": (["tests/test_truthfulqa_known_answers.py", "tests/test_eval_known_answers.py"], None),
    "harness/eval/xstest.py": (["tests/test_eval_known_answers.py", "tests/test_eval_scoring.py"], None),
    "harness/eval/code.py": (["tests/test_eval_known_answers.py", "tests/test_eval_scoring.py"], None),
    "harness/eval/toxigen.py": (["tests/test_eval_scoring.py"], None),
    "harness/eval/lm_eval_runner.py": (["tests/test_eval_known_answers.py", "tests/test_eval_scoring.py"], None),
    "harness/eval/openinstruct.py": (["tests/test_eval_scoring.py"], None),
    # test_grid_known_answers.py first: mutmut maps what runs at import (collection) to the first test run, and that
    # file's first test checks every table as built (row, ppo, dpo, step, mean_difference run only at import)
    "harness/report/grid.py": (["tests/test_grid_known_answers.py", "tests/test_report_truth.py",
                                "tests/test_report_models.py"], None),
    "harness/records/identity.py": (["tests/test_identity_known_answers.py", "tests/test_identity.py",
                                     "tests/test_key_completeness.py"], None),
    "harness/algorithms/__init__.py": (["tests/test_algorithms_known_answers.py", "tests/test_key_completeness.py"], None),
    "harness/train/reward_plan.py": (["tests/test_reward_plan_known_answers.py", "tests/test_key_completeness.py"],
                                     None),
    "harness/records/stages.py": (["tests/test_stages.py"], None),
    "harness/train/batching.py": (["tests/test_batching.py"], None),
    "harness/sweep/cost.py": (["tests/test_sweep_cost.py", "tests/test_sweep_cost_known_answers.py"], None),
    "harness/sweep/memory.py": (["tests/test_sweep_memory.py", "tests/test_sweep_memory_known_answers.py"], None),
}


# Modules whose functions also run at import (grid.py builds the tables from row()/mean_difference()): their mutants'
# tests import everything afresh with the mutant switched on (slower), instead of forking a process that imported them.
IMPORT_TIME = {"harness/report/grid.py"}
# Fixtures that train or build a model (minutes on 2 cores, again in every mutant's test run): tests that use them,
# directly or through a fixture of their file, are left out of the mutants' tests.
SLOW_FIXTURES = {"tiny_base", "tiny_reward_model", "shared_stages", "run_config"}


def slow_tests(test_file: str) -> list[str]:
    """Node ids of the tests of `test_file` that use a slow fixture."""
    tree = ast.parse((ROOT / test_file).read_text())
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    params = {name: {a.arg for a in f.args.args} for name, f in functions.items()}

    def slow(name: str, seen: frozenset = frozenset()) -> bool:
        return any(p in SLOW_FIXTURES or (p in params and p not in seen and slow(p, seen | {p})) for p in params[name])

    return [f"{test_file}::{name}" for name in params if name.startswith("test_") and slow(name)]


def mutant_patterns(module: str, functions: list[str] | None) -> list[str]:
    """mutmut's names of the mutants of `functions` (Class.method or function) of `module`."""
    dotted = module.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    names = [f"xǁ{f.replace('.', chr(0x1c1))}" if "." in f else f"x_{f}" for f in functions or []]
    return [f"{dotted}.{n}__mutmut_*" for n in names]


def pick(paths: list[str]) -> list[str]:
    """The modules of MODULES named by `paths` (a module, or a folder holding some)."""
    out = [m for m in MODULES if any(m == p or m.startswith(p.rstrip("/") + "/") for p in paths)]
    unknown = [p for p in paths if not any(m == p or m.startswith(p.rstrip("/") + "/") for m in MODULES)]
    if unknown:
        sys.exit(f"error: {unknown} not in benchmarks/mutation.py MODULES; add the module with its fast tests")
    return out


def changed_since(ref: str) -> list[str]:
    """The modules of MODULES that differ from `ref` (committed or not)."""
    diff = subprocess.run(["git", "diff", "--name-only", ref], cwd=ROOT, capture_output=True, text=True, check=True)
    return [m for m in MODULES if m in diff.stdout.split()]


def scratch_copy(module: str) -> Path:
    """A fresh copy of the working tree for one module's mutants, configured for mutmut."""
    where = SCRATCH / module.replace("/", "_").removesuffix(".py")
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for name in COPIED:
        src, dst = ROOT / name, where / name
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    config = {
        "source_paths": ["harness"], "only_mutate": [module], "also_copy": ["conf", "sweeps", "hydra_plugins"],
        "pytest_add_cli_args_test_selection": [*MODULES[module][0],
                                               *(f"--deselect={t}" for f in MODULES[module][0] for t in slow_tests(f))],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x"],
        # torch is not fork-safe: workers fork from a server that imported nothing but the test runner
        "process_isolation": "forkserver",
        "forkserver_warmup": "none" if module in IMPORT_TIME else "collect",
        # what a log line or a console line says changes no number
        "do_not_mutate_patterns": [r"^\s*(log|logger|logging)\.(debug|info|warning|error|exception)\(", r"^\s*print\(",
                                   r"^\s*console\.\w+\("],
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    with open(where / "pyproject.toml", "a") as f:
        f.write("\n".join(lines) + "\n")
    return where


STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", 24: "timeout",
          -24: "timeout", 152: "timeout", 255: "timeout", -9: "timeout", -11: "segfault", None: "not checked"}


def run_module(module: str, jobs: int, every_function: bool, previous: dict | None = None) -> dict:
    """Every mutant of the module's functions, or with `previous` (its last result) only the mutants that survived it
    (after tests were added), the rest of its counts kept."""
    tests, functions = MODULES[module]
    functions = None if every_function else functions
    patterns = mutant_patterns(module, functions)
    if previous is not None:
        functions, patterns = previous.get("functions"), sorted(previous["survivors"])
    where = scratch_copy(module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    print(f"[mutation] {module}: {', '.join(functions) if functions else 'every function'}; tests {tests} "
          f"(scratch {where})", flush=True)
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    with open(where / "mutmut.log", "w") as log:
        done = subprocess.run(["nice", "-n", "10", mutmut, "run", "--max-children", str(jobs), *patterns], cwd=where,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    meta = where / "mutants" / (module + ".meta")
    if done.returncode != 0 or not meta.exists():
        tail = (where / "mutmut.log").read_text(errors="replace")[-3000:]
        sys.exit(f"error: mutmut failed on {module} (exit {done.returncode}); its log ends:\n{tail}")
    codes = {name: code for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()
             if not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)}
    survivors, counts = {}, {}
    if previous is not None:  # the previous counts, less the survivors tested again
        counts = dict(previous["counts"])
        for name, old in previous["survivors"].items():
            counts[old["status"]] -= 1
    for name, code in sorted(codes.items()):
        status = STATUS.get(code, "suspicious")
        counts[status] = counts.get(status, 0) + 1
        if status in ("survived", "no tests", "suspicious", "not checked"):
            show = subprocess.run([mutmut, "show", name], cwd=where, env=env, capture_output=True, text=True)
            survivors[name] = {"status": status, "diff": show.stdout.split("\n", 1)[-1].strip()}
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"tests": tests, "functions": functions, "commit": commit, "counts": counts, "survivors": survivors}


def mutated_line(diff: str) -> str:
    """The line a mutant changed, as mutmut shows it (`+` side), stripped: how an equivalent mutant is recognised
    again after the code around it moved."""
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return added[0] if added else ""


def function_of(name: str) -> str:
    return re.sub(r"__mutmut_\d+$", "", name)


def equivalents() -> list[dict]:
    return tomllib.loads(EQUIVALENT.read_text()).get("equivalent", []) if EQUIVALENT.exists() else []


def write_report(results: dict) -> None:
    known = equivalents()

    def entry(name: str, diff: str) -> dict | None:
        return next((e for e in known if e["function"] == function_of(name) and e["mutated"] == mutated_line(diff)), None)

    def reason(name: str, diff: str) -> str | None:
        e = entry(name, diff)
        return e.get("reason") if e else None

    def slow_kill(name: str, diff: str) -> str | None:
        e = entry(name, diff)
        return e.get("killed_by") if e else None

    rows, details = [], []
    total_killed = total_live = 0
    for module in [m for m in MODULES if m in results]:
        r = results[module]
        by_slow = {n: slow_kill(n, s["diff"]) for n, s in r["survivors"].items() if slow_kill(n, s["diff"])}
        killed = (r["counts"].get("killed", 0) + r["counts"].get("timeout", 0) + r["counts"].get("segfault", 0)
                  + len(by_slow))
        equivalent = {n: reason(n, s["diff"]) for n, s in r["survivors"].items() if reason(n, s["diff"])}
        live = {n: s for n, s in r["survivors"].items() if n not in equivalent and n not in by_slow}
        not_reached = sum(1 for s in live.values() if s["status"] == "no tests")
        score = killed / (killed + len(live)) if killed + len(live) else 1.0
        total_killed, total_live = total_killed + killed, total_live + len(live)
        rows.append(f"| `{module}` | {sum(r['counts'].values())} | {killed} | {len(live) - not_reached} | {not_reached} | "
                    f"{len(equivalent)} | {score:.0%} |")
        if live or equivalent or by_slow:
            scope = ", ".join(r["functions"]) if r.get("functions") else "every function"
            details.append(f"\n### `{module}` ({scope}; tests: {', '.join(r['tests'])})\n")
        for n, s in live.items():
            details.append(f"- **{s['status']}** `{n}`\n\n```diff\n{s['diff']}\n```\n")
        for n, why in equivalent.items():
            details.append(f"- equivalent `{n}` (`{mutated_line(r['survivors'][n]['diff'])}`): {why}")
        for n, test in by_slow.items():
            details.append(f"- killed by a slow test, checked by hand: `{n}` (`{mutated_line(r['survivors'][n]['diff'])}`): "
                           f"{test}")
    overall = total_killed / (total_killed + total_live) if total_killed + total_live else 1.0
    REPORT.write_text(
        "# Mutation testing: the last result\n\n"
        "Written by `python benchmarks/mutation.py` (mutmut 3; see its docstring and docs/development.md). "
        "Killed includes timeouts and mutants a slow test (training, several processes: not run per mutant) was shown to "
        "kill by hand. Score = killed / (killed + survived + not reached), equivalent mutants left out.\n\n"
        "| module | mutants | killed | survived | not reached | equivalent | score |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(rows) + f"\n\nAll modules above: {overall:.1%} of the non-equivalent mutants killed.\n\n"
        "## Survivors and equivalent mutants\n" + "\n".join(details) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="modules or folders of MODULES (default: all)")
    parser.add_argument("--changed", metavar="REF", help="the modules changed since REF (git diff REF)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--all-functions", action="store_true", help="mutate every function of the modules named, "
                        "not only those MODULES lists")
    parser.add_argument("--survivors", action="store_true", help="test again only the mutants that survived the "
                        "last run of each module (after adding tests), keeping its other counts")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from the results kept")
    args = parser.parse_args(argv)
    load = lambda: json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # noqa: E731
    if not args.report:
        modules = changed_since(args.changed) if args.changed else pick(args.paths) if args.paths else list(MODULES)
        for module in modules:
            previous = load().get(module) if args.survivors else None
            if args.survivors and not (previous and previous["survivors"]):
                continue
            result = run_module(module, args.jobs, args.all_functions, previous)
            results = load() | {module: result}  # read again: another run may have written other modules meanwhile
            RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    results = load()
    write_report(results)
    print(REPORT.read_text().split("## Survivors")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
