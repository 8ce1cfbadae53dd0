"""What the harness launchers add to Hydra's: deduplicated jobs, skipping complete runs, stage-sized Slurm resources,
a failure summary, and submit-and-exit. The Hydra plugin classes (hydra_plugins/harness_sweep) mix this in.

A launch receives the sweep's job override lists. Each is composed to its run identity (harness.sweep.plan): grid
points that are the same run become one job, and a run already recorded with every benchmark scored is not launched
again (`hydra.launcher.rerun_complete=true` forces it). Failures never stop the other jobs; at the end
`<sweep dir>/summary.json` lists every run's state, and failed runs with their error and log paths.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def _average(run) -> Any:
    try:
        return json.loads(run.result_path.read_text()).get("average")
    except (OSError, ValueError):
        return None


def _error_text(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return f"{type(exc).__name__}: {exc}"


def prepare_tracking(cfg) -> None:
    """Create the MLflow store and experiment once, before jobs start: concurrent jobs creating a fresh SQLite store
    at the same time break its schema migration. Never fails the sweep (tracking never fails a run)."""
    if cfg.tracking.backend != "mlflow" or not cfg.tracking.uri:
        return
    try:
        import mlflow

        mlflow.set_tracking_uri(cfg.tracking.uri)
        if mlflow.get_experiment_by_name(cfg.tracking.experiment) is None:
            # Artifacts beside the results, not in ./mlruns of whatever directory the sweep was started from.
            artifacts = Path(cfg.paths.results) / "mlartifacts"
            mlflow.create_experiment(cfg.tracking.experiment, artifact_location=artifacts.resolve().as_uri())
    except Exception as exc:  # noqa: BLE001
        log.warning("could not prepare MLflow at %s: %s", cfg.tracking.uri, exc)


class SweepLaunch:
    """Mixin for a Hydra Launcher with `self.config` and `self.hydra_context` set by `setup`."""

    rerun_complete: bool = False
    wait: bool = True

    # Subclasses: start the runs; return run_id -> {"return": JobReturn | None, "job_id", "logs"} (None: not waited for).
    def start_runs(self, runs: list) -> dict[str, dict]:
        raise NotImplementedError

    def command(self) -> str:
        return "python -m harness -m " + " ".join(shlex.quote(o) for o in self.config.hydra.overrides.task)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from harness.records.tracking import PENDING, log_pending
        from harness.sweep.plan import plan_runs
        from harness.sweep.status import render, run_state, write_manifest, write_summary

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        compose = lambda o: self.hydra_context.config_loader.load_sweep_config(self.config, o)  # noqa: E731
        runs = plan_runs(job_overrides, compose, initial_job_idx)
        todo = [r for r in runs if self.rerun_complete or not r.complete]
        print(f"[harness] sweep: {len(job_overrides)} grid points -> {len(runs)} unique runs; "
              f"{len(runs) - len(todo)} already complete (not relaunched), {len(todo)} to run", flush=True)
        for cfg in {(r.config.tracking.uri, r.config.tracking.experiment): r.config for r in todo}.values():
            prepare_tracking(cfg)
        relaunched = {r.run_id for r in todo}
        for run in (r for r in runs if r.run_id not in relaunched and (r.result_path.parent / PENDING).exists()):
            log_pending(run.config.tracking, run.config.paths.results, json.loads(run.result_path.read_text()))
        started = self.start_runs(todo) if todo else {}

        entries, returns = [], {}
        for run in runs:
            info = started.get(run.run_id)
            if info is None:  # complete before this sweep
                ret, state = JobReturn(overrides=run.overrides, status=JobStatus.COMPLETED, _return_value=_average(run)), "complete"
            elif info["return"] is None:  # submitted, not waited for
                ret, state = JobReturn(overrides=run.overrides, status=JobStatus.COMPLETED), "submitted"
            else:
                ret = info["return"]
                state = "failed" if ret.status != JobStatus.COMPLETED else \
                    run_state({"result": str(run.result_path), "state": "no result (dry run?)"}, {})
            returns[run.run_id] = ret
            entries.append({"run_id": run.run_id, "overrides": run.overrides, "job_nums": run.job_nums,
                            "result": str(run.result_path), "state": state,
                            "ran": info is not None, "job_id": (info or {}).get("job_id"),
                            "logs": (info or {}).get("logs", []),
                            "error": _error_text(ret._return_value) if ret.status == JobStatus.FAILED else None})
        manifest = {"sweep": self.config.get("sweep"), "sweep_dir": str(sweep_dir), "command": self.command(),
                    "launcher": type(self).__name__, "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "grid_points": len(job_overrides), "runs": entries}
        write_manifest(sweep_dir, manifest)
        if self.wait or not todo:
            write_summary(sweep_dir, manifest)
            print(render(manifest), flush=True)
            print(f"[harness] sweep summary: {sweep_dir / 'summary.json'}", flush=True)
        else:
            print(f"[harness] submitted {len(todo)} jobs; check them with: "
                  f"python -m harness.sweep status {sweep_dir}", flush=True)
        by_num = {num: returns[r.run_id] for r in runs for num in r.job_nums}
        return [by_num[initial_job_idx + i] for i in range(len(job_overrides))]


SUBMITIT_KEYS = ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min")


def submitit_parameters(profile: dict, params: dict) -> dict:
    """The executor parameters of a profile's jobs. A job of several nodes runs the harness once, on its first node
    (srun --nodes=1 --ntasks=1); the run then starts one launcher per node itself (harness/train/processes.py)."""
    out = dict(params) | {k: profile[k] for k in SUBMITIT_KEYS if profile.get(k) is not None}
    nodes = profile.get("nodes") or 1
    if nodes > 1:
        out["additional_parameters"] = {**(out.get("additional_parameters") or {}), "nodes": nodes, "ntasks_per_node": 1}
        out["srun_args"] = [*(out.get("srun_args") or []), "--nodes=1", "--ntasks=1"]
    return out


def profile_overrides(profile: dict) -> list[str]:
    """The run config follows its job's resources: one training process per GPU, the profile's sharding."""
    processes = profile.get("processes") or max(1, (profile.get("gpus_per_node") or 0))
    out = [f"launch.processes={processes}"]
    if (profile.get("nodes") or 1) > 1:
        out.append(f"launch.nodes={profile['nodes']}")
    if profile.get("sharding", "none") != "none":
        out.append(f"launch.sharding={profile['sharding']}")
    return out


def as_dict(value) -> dict:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else dict(value or {})
