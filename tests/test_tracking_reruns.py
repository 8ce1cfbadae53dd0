"""MLflow keeps one run per harness run: a rerun continues it instead of adding a duplicate, and a run whose process
was killed does not stay RUNNING."""

from __future__ import annotations

import subprocess
import sys

from omegaconf import OmegaConf

from conftest import ROOT
from harness.config.schema import TrackingConfig
from harness.records.tracking import Tracker

TAGS = {"run_id": "tiny-dpo-s1-abc", "seed": "1"}


def _tracking(tmp_path):
    return OmegaConf.structured(TrackingConfig(uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="reruns"))


def _runs(cfg):
    import mlflow

    client = mlflow.MlflowClient(cfg.uri)
    experiment = client.get_experiment_by_name(cfg.experiment)
    return client.search_runs([experiment.experiment_id], "tags.run_id = 'tiny-dpo-s1-abc'")


def test_a_killed_run_is_continued_by_its_rerun_and_not_left_running(tmp_path):
    cfg = _tracking(tmp_path)
    killed = ("import os, signal\nfrom omegaconf import OmegaConf\nfrom harness.records.tracking import Tracker\n"
              "from harness.config.schema import TrackingConfig\n"
              f"t = Tracker(OmegaConf.structured(TrackingConfig(uri={cfg.uri!r}, experiment='reruns')))\n"
              f"t.start('tiny-dpo-s1-abc', params={{'seed': 1}}, tags={TAGS!r})\n"
              "t.log_metrics({'train/loss': 1.0}, step=1)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", killed], cwd=ROOT, timeout=300)
    assert [r.info.status for r in _runs(cfg)] == ["RUNNING"]

    tracker = Tracker(cfg)
    tracker.start("tiny-dpo-s1-abc", params={"seed": 1}, tags=TAGS)
    tracker.log_metrics({"average": 50.0})
    tracker.end("FINISHED")
    runs = _runs(cfg)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["average"] == 50.0

    again = Tracker(cfg)  # a second rerun: still one run
    again.start("tiny-dpo-s1-abc", params={"seed": 1}, tags=TAGS)
    again.end("FINISHED")
    assert len(_runs(cfg)) == 1
