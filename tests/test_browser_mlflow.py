"""Real runs in a real MLflow server, seen in a real browser (Debian's chromium, headless), and reported.

Two runs of the tiny config through harness.pipeline.run (the SFT model evaluated; a 2-step DPO run) log to a SQLite
store; `mlflow server` serves it on loopback; chromium renders the experiment's runs page through the saved views the
harness writes (harness/report/views.py) and dumps the DOM.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import checkout_commit
from harness.pipeline import run
from harness.report.__main__ import main
from harness.report.runs import read_disk, read_mlflow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=2400,1200", "--virtual-time-budget=20000", "--dump-dom"]
# (the runs table renders only the columns inside the window: a wide one shows every column of a view)


def wait_healthy(log: Path, server: subprocess.Popen, timeout: float = 240) -> str:
    """The URL of the server started on port 0 (the port its own socket got, as uvicorn logs it), once healthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow server exited with {server.returncode}"
        bound = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        try:
            if bound and urllib.request.urlopen(bound[1] + "/health", timeout=5).read().strip() == b"OK":
                return bound[1]
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"mlflow server not healthy after {timeout} s; its log: {log}")


@pytest.fixture(scope="module")
def harness_runs(tmp_path_factory, shared_stages):
    """(home, [SFT result, DPO result], tracking URI, server URL): the runs made while the server starts."""
    from mlflow.tracking import MlflowClient

    from conftest import compose

    home = tmp_path_factory.mktemp("browser")
    overrides = [f"paths.home={home}", f"paths.stages={shared_stages}", "eval=smoke"]  # GSM8k only: few columns
    uri = f"sqlite:///{home}/results/mlflow.db"
    (home / "results").mkdir()
    MlflowClient(uri).search_experiments()  # the store's schema exists before the server and the runs open it

    # port 0: the server's socket gets a free port itself (no port chosen here, closed, then raced for)
    log = home / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host",
                               "127.0.0.1", "--port", "0", "--workers", "1"], cwd=home,
                              stdout=subprocess.DEVNULL, stderr=open(log, "a"), start_new_session=True)
    try:
        results = [run(compose(*overrides, "algorithm=none")),
                   run(compose(*overrides, "algorithm.max_steps=2"))]
        yield home, results, uri, wait_healthy(log, server)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=30)


def runs_page(url: str, experiment_id: str, view: str, profile: Path) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium (.ci/run installs it)"
    page = f"{url}/#/experiments/{experiment_id}/runs?viewStateShareKey={view}"
    out = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_runs_page_shows_the_runs_and_their_scores(harness_runs, tmp_path):
    from mlflow.tracking import MlflowClient

    _, (sft, dpo), uri, url = harness_runs
    experiment_id = MlflowClient(uri).get_experiment_by_name("harness").experiment_id
    dom = runs_page(url, experiment_id, "harness", tmp_path / "profile-all")
    assert sft["run_id"] in dom and dpo["run_id"] in dom
    for column in ("eval/gsm8k", "category/reasoning", "algorithm", "eval_suite"):
        assert f">{column}<" in dom, column  # a column header of the view (the smoke suite has no Average)

    # Table 1's view filters on the runs' table tags: the SFT model is Table 1's "Tulu 2 (SFT)" row (of the tiny
    # grid); DPO on the tiny dataset is in no table.
    dom = runs_page(url, experiment_id, "table1", tmp_path / "profile-t1")
    assert sft["run_id"] in dom and dpo["run_id"] not in dom
    assert ">category/reasoning<" in dom and ">eval/gsm8k<" not in dom  # Table 1's columns: categories


def test_real_runs_carry_axes_tables_and_consistent_metric_names(harness_runs):
    from mlflow.tracking import MlflowClient

    _, (sft, dpo), uri, _ = harness_runs
    client = MlflowClient(uri)
    sft_run = client.get_run(sft["mlflow_run_id"])
    assert {k: sft_run.data.tags[k] for k in ("model", "algorithm", "dataset", "eval_suite", "table", "table_1")} == \
        {"model": "tiny", "algorithm": "none", "dataset": "none", "eval_suite": "smoke", "table": "1", "table_1": "1"}
    dpo_run = client.get_run(dpo["mlflow_run_id"])
    assert "table" not in dpo_run.data.tags and dpo_run.data.tags["dataset"] == "tiny"
    for r, result in ((sft_run, sft), (dpo_run, dpo)):
        scores = {k for k in r.data.metrics if k.startswith(("eval/", "category/")) or k == "average"}
        assert scores == {"eval/gsm8k", "category/reasoning"}  # the smoke suite: GSM8k only; average needs 6
        assert r.data.tags["git_commit"] == result["provenance"]["git_commit"] == checkout_commit()
        assert r.data.tags["recorded_at"] == result["recorded_at"]


def test_reports_of_real_runs_are_the_same_from_disk_and_mlflow(harness_runs, tmp_path):
    home, (sft, dpo), uri, _ = harness_runs
    results = home / "results"
    assert read_mlflow(uri, "harness") == read_disk(results)
    for source in ("disk", "mlflow"):
        assert main(["--source", source, "--results", str(results), "--out", str(tmp_path / source), "--model", "tiny",
                     "--suite", "smoke"]) == 0
    for name in ("table1.csv", "table1.md", "table4.csv", "table5_runs.csv", "figure1.csv"):
        assert (tmp_path / "disk" / name).read_text() == (tmp_path / "mlflow" / name).read_text(), name
    table4 = {(r["reward_model"], r["prompts"]): r for r in csv.DictReader(open(tmp_path / "disk" / "table4.csv"))}
    sft_row = table4[("Tulu 2 SFT", "-")]
    assert (sft_row["gsm_acc"], sft_row["gsm_acc_n"]) == (f"{sft['benchmarks']['gsm8k']['score']:.1f}", "1")
    assert sft_row["coding"] == "missing"  # the smoke suite has no coding benchmark
    behind = list(csv.DictReader(open(tmp_path / "disk" / "table4_runs.csv")))
    assert [(r["run_id"], r["config_hash"], r["git_commit"]) for r in behind] == \
        [(sft["run_id"], sft["config_hash"], sft["provenance"]["git_commit"])]
