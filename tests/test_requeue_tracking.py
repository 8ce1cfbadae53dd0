"""A run stopped for a requeue (Slurm time limit or preemption) ends its MLflow run as KILLED, not FAILED, and the
requeued attempt continues that same MLflow run (no duplicate) to FINISHED.

submitit's requeue handler (submitit/core/job_environment.py, SignalHandler.checkpoint_and_try_requeue) requeues the
job and then calls sys.exit(-1) from inside the signal handler; the test installs a handler doing that on SIGUSR2
(submitit's default preemption signal) and sends the real signal while the run is under way.
"""

from __future__ import annotations

import os
import signal
import sys

import mlflow
import pytest

from harness import pipeline


def test_a_requeued_run_ends_killed_and_the_next_attempt_finishes(run_config, monkeypatch):
    cfg = run_config("algorithm=none", "eval=smoke")
    evaluate = pipeline.evaluate

    def signalled(*args, **kwargs):  # the signal arrives while the run is evaluating
        os.kill(os.getpid(), signal.SIGUSR2)
        return evaluate(*args, **kwargs)

    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: sys.exit(-1))
    monkeypatch.setattr(pipeline, "evaluate", signalled)
    try:
        with pytest.raises(SystemExit):
            pipeline.run(cfg)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    monkeypatch.setattr(pipeline, "evaluate", evaluate)

    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    attempts = lambda: client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])  # noqa: E731
    killed = attempts()
    assert [r.info.status for r in killed] == ["KILLED"]

    result = pipeline.run(cfg)
    runs = attempts()
    assert [r.info.status for r in runs] == ["FINISHED"]  # the KILLED run, continued: one MLflow run per run
    assert runs[0].info.run_id == killed[0].info.run_id == result["mlflow_run_id"]
    assert runs[0].data.tags["run_id"] == result["run_id"]
