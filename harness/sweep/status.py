"""A sweep's jobs on disk, their state now, and the summary that names failed runs with their logs.

    python -m harness.sweep status results/hydra/multirun/2026-11-21/12-00-00     # a sweep directory
    python -m harness.sweep status --latest                                       # the newest one under results/

`<sweep dir>/sweep.json` is written when the jobs are submitted (run ids, overrides, Slurm job ids, log paths);
`<sweep dir>/summary.json` when a blocking sweep ends. Status reads the first and asks the results on disk (a recorded
run is complete) and Slurm (everything else) what happened since.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from harness.config.errors import UserError
from harness.records.stages import write_atomic

MANIFEST = "sweep.json"
SUMMARY = "summary.json"
# Slurm states after which a job without a result has failed.
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def write_manifest(sweep_dir: Path, manifest: dict) -> Path:
    path = Path(sweep_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(manifest, indent=2, default=str))
    return path


class NoSweep(UserError, FileNotFoundError):
    """No submitted sweep where one was asked for."""


LAUNCH = "launch one with `python -m harness -m +sweep=<name>` (sweeps/<name>.yaml)"


def read_manifest(sweep_dir: Path) -> dict:
    path = Path(sweep_dir) / MANIFEST
    if not path.exists():
        raise NoSweep(f"{path} does not exist: {sweep_dir} is not a sweep directory, or its jobs were never submitted; "
                      f"give the directory a sweep printed when it started, or --latest")
    return json.loads(path.read_text())


def latest_sweep_dir(results: Path) -> Path:
    found = sorted(Path(results).glob(f"hydra/multirun/*/*/{MANIFEST}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise NoSweep(f"no sweep yet under {Path(results) / 'hydra' / 'multirun'}: {LAUNCH}, or pass --results "
                      "<the results directory of your sweeps>")
    return found[-1].parent


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> Slurm state, from sacct (or squeue where there is no accounting)."""
    if not job_ids:
        return {}
    ids = sorted({j.split("_")[0] for j in job_ids})
    for cmd in (["sacct", "--noheader", "--parsable2", "-o", "JobID,State", "-j", ",".join(ids)],
                ["squeue", "--states=all", "--noheader", "--format=%i|%T", "--jobs", ",".join(ids)]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        states = {}
        for line in out.stdout.splitlines():
            job, _, state = line.partition("|")
            if job and "." not in job:
                states[job] = state.split()[0] if state else "UNKNOWN"
        if states:
            return states
    return {}


def run_state(entry: dict, slurm: dict[str, str]) -> str:
    """complete | failed | running | pending | submitted | ... for one run of a manifest."""
    result = Path(entry["result"])
    if result.exists():
        benchmarks = json.loads(result.read_text()).get("benchmarks", {})
        if all("error" not in b for b in benchmarks.values()):
            return "complete"
        return "failed"  # recorded, but a benchmark failed
    state = slurm.get(entry.get("job_id") or "", "")
    if state in ENDED:
        return "failed"
    return state.lower() or entry.get("state", "submitted")


def status(sweep_dir: Path) -> dict:
    manifest = read_manifest(sweep_dir)
    slurm = slurm_states([r["job_id"] for r in manifest["runs"] if r.get("job_id")])
    runs = [r | {"state": run_state(r, slurm), "slurm_state": slurm.get(r.get("job_id") or "")} for r in manifest["runs"]]
    return manifest | {"runs": runs, "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def render(summary: dict) -> str:
    runs = summary["runs"]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    head = (f"sweep {summary.get('sweep') or ''} ({summary['sweep_dir']}): {summary['grid_points']} grid points -> "
            f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    lines = [head]
    for r in runs:
        if r["state"] == "failed":
            lines.append(f"  FAILED {r['run_id']}  job {r.get('job_id') or '-'}")
            lines.append(f"         overrides: {' '.join(r['overrides'])}")
            for log in r.get("logs", []):
                lines.append(f"         log: {log}")
            if r.get("error"):
                lines.append(f"         error: {r['error'].strip().splitlines()[0][:300]}")  # the message, not its last detail line
    if counts.get("failed"):
        lines.append(f"  rerun the same command to run only the failed and missing runs: {summary.get('command', '')}")
    return "\n".join(lines)


def write_summary(sweep_dir: Path, summary: dict) -> Path:
    path = Path(sweep_dir) / SUMMARY
    write_atomic(path, json.dumps(summary, indent=2, default=str))
    (Path(sweep_dir) / "summary.txt").write_text(render(summary) + "\n")
    return path
