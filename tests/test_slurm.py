"""Sweeps on a real single-node Slurm cluster (harness.sweep.slurm_local), through hydra-submitit-launcher.

The cluster is started once for this module (the Debian packages are installed first if missing: CI runs as root)
and stopped by PID at the end. Runs are the tiny model with a few DPO steps; every run is a real `python -m harness`
job: training, evaluation, result files and MLflow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from harness.pipeline import planned_stages
from harness.records.stages import latest_checkpoint
from harness.sweep import slurm_local

from conftest import ROOT, compose

pytestmark = pytest.mark.slow
STEPS = 4


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    env = slurm_local.start(root)
    yield {**os.environ, **env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    slurm_local.stop(root)


def run_args(home: Path, stages: Path, sweep_dir: Path, steps: int = STEPS) -> list[str]:
    """Tiny runs on the Slurm launcher: a few DPO steps, GSM8k answers of at most 16 tokens."""
    return [f"paths.home={home}", f"paths.stages={stages}", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=slurm",
            "hydra.launcher.resources.cpu.cpus_per_task=1", f"algorithm.max_steps={steps}",
            "eval.benchmarks.gsm8k.generation.max_new_tokens=16"]


def harness_multirun(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "-m", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=timeout)


def scontrol(env: dict, *args: str) -> str:
    return subprocess.run(["scontrol", *args], env=env, capture_output=True, text=True, check=True, timeout=60).stdout


def job_field(env: dict, job_id: str, name: str) -> str:
    for token in scontrol(env, "show", "job", job_id).split():
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    raise KeyError(f"{name} not in scontrol show job {job_id}")


def wait_for(condition, timeout: float, what: str, step: float = 1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def results(summary: dict) -> dict[str, dict]:
    return {r["run_id"]: json.loads(Path(r["result"]).read_text()) for r in summary["runs"]}


# ------------------------------------------------------------------------------------------------- a 2x2 sweep
@pytest.fixture(scope="module")
def two_by_two(slurm, tiny_base, shared_stages, tmp_path_factory):
    """seed {1,2} x GSM8k problems {2,3}: 4 runs as 4 Slurm jobs at once; each seed's policy is needed by 2 of them."""
    home = tmp_path_factory.mktemp("sweep2x2")
    out = harness_multirun(slurm, "seed=1,2", "eval.benchmarks.gsm8k.limit=2,3", *run_args(home, shared_stages, home / "sweep"))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return home, json.loads((home / "sweep" / "summary.json").read_text())


def test_2x2_sweep_on_slurm_records_every_run_and_its_mlflow_run(two_by_two):
    home, summary = two_by_two
    assert summary["grid_points"] == 4 and len(summary["runs"]) == 4
    assert {r["state"] for r in summary["runs"]} == {"complete"}
    assert all(r["ran"] and r["job_id"] for r in summary["runs"])
    assert len({r["job_id"] for r in summary["runs"]}) == 4
    for run_id, result in results(summary).items():
        assert result["run_id"] == run_id
        gsm8k = result["benchmarks"]["gsm8k"]
        assert "error" not in gsm8k and gsm8k["metrics"]["sample_len"] in (2, 3)
        assert result["training"]["global_step"] == STEPS
    index = [json.loads(line) for line in (home / "results" / "index.jsonl").read_text().splitlines()]
    assert sorted(r["run_id"] for r in index) == sorted(r["run_id"] for r in summary["runs"])

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home}/results/mlflow.db")
    experiment = client.get_experiment_by_name("harness")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(r["run_id"] for r in summary["runs"])
    assert {r.info.status for r in runs} == {"FINISHED"}
    # The launcher created the experiment before the jobs, with its artifacts beside the results.
    assert experiment.artifact_location == (home / "results" / "mlartifacts").as_uri()
    assert all((home / "results" / "mlartifacts" / r.info.run_id / "artifacts" / "result.json").exists() for r in runs)
    assert all({"eval/gsm8k", "category/reasoning"} <= set(r.data.metrics) for r in runs)


def test_two_concurrent_jobs_on_one_stage_train_it_once(two_by_two, slurm):
    _, summary = two_by_two
    by_policy: dict[str, list] = {}
    for entry, result in zip(summary["runs"], results(summary).values()):
        by_policy.setdefault(result["stages"]["policy"]["key"], []).append((entry, result))
    assert len(by_policy) == 2  # one policy per seed, each needed by two runs
    for key, pair in by_policy.items():
        assert len(pair) == 2
        trained = [(e, r) for e, r in pair if not r["stages"]["policy"]["reused"]]
        reused = [(e, r) for e, r in pair if r["stages"]["policy"]["reused"]]
        assert len(trained) == 1 and len(reused) == 1, key
        assert trained[0][1]["training"]["steps_this_run"] == STEPS
        assert reused[0][1]["training"]["steps_this_run"] == 0
        # Both jobs were running while the stage was trained: the second waited on the lock, then reused it.
        complete = json.loads((Path(trained[0][1]["stages"]["policy"]["dir"]) / "COMPLETE").read_text())
        completed_at = datetime.strptime(complete["completed_at"][:19], "%Y-%m-%dT%H:%M:%S")
        started = datetime.strptime(job_field(slurm, reused[0][0]["job_id"], "StartTime"), "%Y-%m-%dT%H:%M:%S")
        # both read from this machine's clock, to the second: equal seconds are consistent with "started before"
        assert started <= completed_at, (key, started, completed_at)
        logs = "".join(Path(p).read_text() for e, _ in pair for p in e["logs"] if Path(p).exists())
        # each job's console line for the stage (harness.console): trained by one, reused by the other
        assert len(re.findall(rf"\[harness\] ran +dpo policy {key}", logs)) == 1, logs[-3000:]
        assert len(re.findall(rf"\[harness\] reused +dpo policy {key}", logs)) == 1, logs[-3000:]


# ------------------------------------------------------------------------------------------------- failures
def test_failing_run_is_summarised_and_the_rerun_runs_only_it(slurm, tiny_base, shared_stages, tmp_path):
    broken = tmp_path / "broken_train.jsonl"  # rows without a `rejected` side: the run fails when it loads them
    rows = [json.loads(line) for line in (ROOT / "harness/assets/tiny/preferences_train.jsonl").read_text().splitlines()]
    broken.write_text("".join(json.dumps({"chosen": r["chosen"]}) + "\n" for r in rows))
    grid = [f"dataset.files.train=tiny/preferences_train.jsonl,{broken}", "seed=1", "eval.benchmarks.gsm8k.limit=4"]

    first = harness_multirun(slurm, *grid, *run_args(tmp_path, shared_stages, tmp_path / "sweep1"))
    assert first.returncode != 0  # Hydra reports the failed job after every job has ended
    summary = json.loads((tmp_path / "sweep1" / "summary.json").read_text())
    states = {r["state"] for r in summary["runs"]}
    assert states == {"complete", "failed"}
    failed = next(r for r in summary["runs"] if r["state"] == "failed")
    assert str(broken) in " ".join(failed["overrides"])
    assert "rejected" in failed["error"]
    assert any("missing column(s) ['rejected']" in Path(p).read_text() for p in failed["logs"])
    text = (tmp_path / "sweep1" / "summary.txt").read_text()
    assert f"FAILED {failed['run_id']}" in text and failed["logs"][0] in text
    assert f"FAILED {failed['run_id']}" in first.stdout

    broken.write_text((ROOT / "harness/assets/tiny/preferences_train.jsonl").read_text())  # fix the cause, rerun
    second = harness_multirun(slurm, *grid, *run_args(tmp_path, shared_stages, tmp_path / "sweep2"))
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    rerun = json.loads((tmp_path / "sweep2" / "summary.json").read_text())
    assert {r["state"] for r in rerun["runs"]} == {"complete"}
    assert [r["run_id"] for r in rerun["runs"] if r["ran"]] == [failed["run_id"]]
    assert len([r for r in rerun["runs"] if r["job_id"]]) == 1  # one Slurm job: the complete run was not relaunched


# ------------------------------------------------------------------------------------------------- time limit
def job_pids(env: dict, job_id: str) -> list[int]:
    """The job's Python processes (the run itself), from Slurm's own process tracking."""
    pids = []
    raw_id = job_field(env, job_id, "JobId")  # listpids wants the job's own id, not array_task syntax
    for line in scontrol(env, "listpids", raw_id).splitlines()[1:]:
        pid = int(line.split()[0])
        try:
            if b"submitit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            pass
    return pids


def test_job_killed_by_time_limit_is_requeued_and_resumes_from_its_checkpoint(slurm, tiny_base, shared_stages, tmp_path):
    steps = 12
    args = ["seed=7", "algorithm.save_steps=2", "eval.benchmarks.gsm8k.limit=2",
            *run_args(tmp_path, shared_stages, tmp_path / "sweep", steps), "hydra.launcher.wait=false",
            "hydra.launcher.signal_delay_s=90", "hydra.launcher.max_num_timeout=2", "hydra.launcher.resources.cpu.timeout_min=10"]
    submitted = harness_multirun(slurm, *args, timeout=300)
    assert submitted.returncode == 0, submitted.stdout[-4000:] + submitted.stderr[-4000:]
    assert "python -m harness.sweep status" in submitted.stdout
    manifest = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    (run,) = manifest["runs"]
    job = run["job_id"]
    cfg = compose(*[a for a in args if not a.startswith("hydra")])
    policy = next(s for s in planned_stages(cfg) if s.kind == "policy")
    checkpoints = policy.dir / "checkpoints"

    # Hold the run still right after its first checkpoint (so timing cannot let it finish first), then give the job
    # a time limit that ends in a minute: Slurm's next periodic check (every 30 s) sends submitit's warning signal.
    wait_for(lambda: latest_checkpoint(checkpoints), 600, "the first checkpoint", step=0.2)
    pids = wait_for(lambda: job_pids(slurm, job), 30, "the job's processes")
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    stopped_at = int(latest_checkpoint(checkpoints).rsplit("-", 1)[1])
    assert stopped_at < steps, "training finished before the time limit could interrupt it"
    h, m, s = (int(x) for x in job_field(slurm, job, "RunTime").split(":")[-3:])
    limit = h * 3600 + m * 60 + s + 60
    scontrol(slurm, "update", f"JobId={job}", f"TimeLimit={limit // 60}:{limit % 60:02d}")

    # Slurm continues the stopped process to deliver the warning; submitit's handler requeues the job and exits.
    # Slurm then holds a requeued job for two minutes before it may start again: release it, with room to finish.
    requeued = lambda: job_field(slurm, job, "Restarts") == "1" and job_field(slurm, job, "JobState") == "PENDING"  # noqa: E731
    wait_for(requeued, 300, "the requeue after the time-limit warning")  # a 30 s check, then the handler: room for a busy machine
    scontrol(slurm, "update", f"JobId={job}", "TimeLimit=10", "StartTime=now")
    result_path = Path(run["result"])
    wait_for(result_path.exists, 600, "the requeued run's result")

    result = json.loads(result_path.read_text())
    training = result["training"]
    assert training["global_step"] == steps
    resumed = int(training["resumed_from"].rsplit("-", 1)[1])
    assert resumed >= stopped_at >= 2
    assert training["steps_this_run"] == steps - resumed
    # submitit's messages: in the job's own logs, or (logged while the run's console was captured) in the run's log
    logs = "".join(Path(p).read_text() for p in [*run["logs"], result_path.parent / "run.log"] if Path(p).exists())
    assert "this job is timed-out" in logs and "Requeued job" in logs

    status = subprocess.run([sys.executable, "-m", "harness.sweep", "status", str(tmp_path / "sweep")], cwd=ROOT,
                            env=slurm, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "1 runs: 1 complete" in status.stdout, status.stdout + status.stderr
