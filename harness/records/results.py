"""Run results on disk: one JSON per run, one row per run in a results index, and the summary table.

    results/runs/<run_id>/result.json     config, training metrics, benchmark and category scores, provenance
    results/runs/<run_id>/items.json      per benchmark, the per-item scores behind its score (harness.eval.items)
    results/index.jsonl                   one row per run (rewritten in place when the same run is recorded again)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from filelock import FileLock

from harness.config.schema import CATEGORIES
from harness.records.stages import library_versions, write_atomic

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ITEMS_FILE = "items.json"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (commit + ("-dirty" if dirty else "")) if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance_versions() -> dict[str, str]:
    from importlib import metadata

    versions = library_versions()
    for name in ("mlflow", "hydra-core", "pandas"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def write_result(results_dir: Path, result: dict) -> Path:
    run_dir = Path(results_dir) / "runs" / result["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "result.json"
    write_atomic(path, json.dumps(result, indent=2, default=str))
    return path


def write_items(results_dir: Path, run_id: str, items: dict) -> Path:
    path = Path(results_dir) / "runs" / run_id / ITEMS_FILE
    write_atomic(path, json.dumps(items, separators=(",", ":")))
    return path


def read_items(results_dir: Path, run_id: str) -> dict | None:
    """A run's item tables (None for a run recorded before they were kept)."""
    try:
        return json.loads((Path(results_dir) / "runs" / run_id / ITEMS_FILE).read_text())
    except (OSError, ValueError):
        return None


def stages_digest(result: dict) -> str | None:
    """What produced the run's scores: its policy (stage key or path) and every benchmark's stage. Runs with the same
    digest are the same numbers, whatever their seeds (harness.report counts them once). None without stage records."""
    from harness.records.stages import digest

    policy = (result.get("stages") or {}).get("policy", {})
    dirs = sorted(b["dir"] for b in result.get("benchmarks", {}).values() if b.get("dir"))
    if not dirs and not (policy.get("key") or policy.get("path")):
        return None
    return digest({"policy": policy.get("key") or policy.get("path"), "benchmarks": dirs}, 16)


def index_row(result: dict) -> dict:
    """The flat row of the results index: axes, scores, provenance."""
    return {
        "run_id": result["run_id"],
        "config_hash": result["config_hash"],
        "recorded_at": result["recorded_at"],
        **result["axes"],
        **{f"eval/{k}": v.get("score") for k, v in result["benchmarks"].items()},
        **{f"category/{k}": v for k, v in result["categories"].items()},
        "average": result["average"],
        "git_commit": result["provenance"]["git_commit"],
        "seed": result["provenance"]["seed"],
        "effective_batch_size": result["provenance"].get("effective_batch_size"),
        "chat_template": result["provenance"]["chat_template"],
        "versions": result["provenance"]["versions"],
        "result": result["result_path"],
        "stages_digest": stages_digest(result),
    }


def upsert_index(results_dir: Path, row: dict) -> Path:
    index = Path(results_dir) / "index.jsonl"
    index.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(index) + ".lock"):
        rows = read_index(results_dir)
        rows = [r for r in rows if r["run_id"] != row["run_id"]] + [row]
        write_atomic(index, "".join(json.dumps(r, default=str) + "\n" for r in rows))
    return index


def read_index(results_dir: Path) -> list[dict]:
    index = Path(results_dir) / "index.jsonl"
    if not index.exists():
        return []
    return [json.loads(line) for line in index.read_text().splitlines() if line.strip()]


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def summary_table(result: dict) -> str:
    """A readable end-of-run summary: stages, benchmark scores, categories and the Average."""
    lines = [f"run {result['run_id']}  ({result['config_hash']})", ""]
    for name, stage in result["stages"].items():
        state = "reused" if stage.get("reused") else "ran"
        lines.append(f"  stage {name:<13} {state:<7} {stage.get('dir') or stage.get('path', '')}")
    lines += ["", f"  {'benchmark':<26} {'category':<15} {'score':>7}"]
    for key, b in result["benchmarks"].items():
        score = _fmt(b.get("score")) if "error" not in b else "FAILED"
        lines.append(f"  {key:<26} {b['category']:<15} {score:>7}")
    width = max(len(c) for c in (*CATEGORIES, "average"))  # full names: no "inst_followi"
    lines += ["", "  " + "  ".join(f"{c:>{width}}" for c in (*CATEGORIES, "average"))]
    lines.append("  " + "  ".join(f"{_fmt(result['categories'].get(c)):>{width}}" for c in CATEGORIES)
                 + f"  {_fmt(result['average']):>{width}}")
    lines.append("")
    lines.append(f"  result: {result['result_path']}")
    return "\n".join(lines)
