"""MLflow that survives (reliability-2.md, "MLflow"): two first runs at once both logged, a full disk fails in one line
and leaves the store usable, and a run that could not log is logged by the next invocation of its command."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

# One Tracker run in a fresh interpreter: MLflow imported first, then it waits for the go file, so that two of them
# reach a fresh store at the same moment.
TRACKED_RUN = """
import sys, time
from pathlib import Path
import mlflow  # noqa: F401
from omegaconf import OmegaConf
from harness.records.tracking import Tracker
uri, go, run_id = sys.argv[1:4]
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.002)
tracker = Tracker(OmegaConf.create({"backend": "mlflow", "uri": uri, "experiment": "harness", "timeout_s": 10.0}))
tracker.start(run_id, params={"seed": 1}, tags={"run_id": run_id})
tracker.log_metrics({"average": 50.0})
tracker.end()
print("logged" if tracker.active and tracker.failed is None else f"not logged: {tracker.failed}", flush=True)
"""


def test_two_first_runs_started_together_against_a_fresh_store_are_both_logged(tmp_path):
    """Probe 8: two identical first runs 0.5 s apart raced MLflow's schema creation: both warned, neither was logged,
    `_alembic_tmp_experiments` was left and the store stayed broken. The store is now created under a file lock,
    whole or not at all."""
    db = tmp_path / "results" / "mlflow.db"
    uri, go = f"sqlite:///{db}", tmp_path / "go"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-c", TRACKED_RUN, uri, str(go), f"run-{i}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) for i in (1, 2)]
    for run in runs:
        assert run.stdout.readline().strip() == "ready", run.stderr.read()[-2000:]
    go.touch()
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [out.strip() for out, _ in outputs] == ["logged", "logged"], [err[-2000:] for _, err in outputs]
    with sqlite3.connect(db) as con:
        tables = [name for (name,) in con.execute("select name from sqlite_master where type = 'table'")]
        finished = sorted(r for (r,) in con.execute("select name from runs where status = 'FINISHED'"))
    assert not [t for t in tables if t.startswith("_alembic_tmp")]
    assert finished == ["run-1", "run-2"]


def on_a_small_disk(directory: Path, size: str, *command: str, env: dict | None = None, timeout: int = 300):
    """`command` with a fresh tmpfs of `size` mounted at `directory` (a private mount namespace: a real disk that
    fills, with ENOSPC, as a full scratch disk would)."""
    import os

    directory.mkdir(parents=True, exist_ok=True)
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    mount = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
    return subprocess.run(["unshare", *user, "--mount", "sh", "-c", mount, "sh", size, str(directory), *command],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", **(env or {})})


FULL_DISK_STORE = """
import os, sys
from pathlib import Path
from omegaconf import OmegaConf
from harness.records.tracking import Tracker
from harness.report.runs import read_mlflow
disk = Path(sys.argv[1])
uri = f"sqlite:///{disk}/mlflow.db"
fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # the disk full, as at the end of a long evaluation
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    os.close(fd)
cfg = OmegaConf.create({"backend": "mlflow", "uri": uri, "experiment": "harness", "timeout_s": 10.0})
tags = {"run_id": "tiny-none-s1", "config_hash": "abc", "seed": "1"}
full = Tracker(cfg)
full.start("tiny-none-s1", params={"seed": 1}, tags=tags)
print("first:", full.failed)
print("left:", sorted(p.name for p in disk.iterdir()))
(disk / "filler").unlink()  # space freed
again = Tracker(cfg)
again.start("tiny-none-s1", params={"seed": 1}, tags=tags)
again.log_metrics({"eval/gsm8k": 50.0, "average": 50.0})
again.set_tags({"recorded_at": "2026-12-06T00:00:00"})
again.end()
print("second:", again.failed)
print("report:", [(r.run_id, r.metrics) for r in read_mlflow(uri, "harness")])
"""


def test_a_full_disk_leaves_the_store_usable(tmp_path):
    """Probe 9: a disk that filled left mlflow.db half-migrated (`table webhooks already exists` once space was freed)
    and every later run broken. The store is built in a temporary file and renamed into place: a full disk leaves no
    store, and once space is freed the next run creates it whole, logs, and the report reads it. (A real full disk: a
    small tmpfs in a private mount namespace.)"""
    out = on_a_small_disk(tmp_path / "disk", "2m", sys.executable, "-c", FULL_DISK_STORE, str(tmp_path / "disk"))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert "full" in lines["first"] or "No space" in lines["first"], lines["first"]
    assert lines["left"] == "['filler', 'mlflow.db.lock']"  # no half-made store, no temporary file
    assert lines["second"] == "None"
    assert lines["report"] == "[('tiny-none-s1', {'eval/gsm8k': 50.0, 'average': 50.0})]"


def test_a_full_disk_fails_the_run_in_one_line(tmp_path):
    """Probe 9: disk full during a run: exit 1 with a 182-line chained ENOSPC traceback. Now one `error:` line naming
    the disk and what to do, exit 2. (A real full disk under the results directory; Hydra's own files elsewhere.)"""
    results = tmp_path / "results"
    fill = "dd if=/dev/zero of=$0/filler bs=64k 2>/dev/null; exec \"$@\""
    out = on_a_small_disk(results, "1m", "sh", "-c", fill, str(results), sys.executable, "-m", "harness",
                          f"paths.results={results}", f"hydra.run.dir={tmp_path / 'hydra'}", "tracking=none")
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"error: no space left on the disk holding {results}"), out.stderr
    assert "rerunning the same command resumes" in out.stderr and not out.stdout.strip()


def test_a_run_that_could_not_log_is_logged_by_the_next_invocation_even_on_the_fast_path(tmp_path, shared_stages):
    """Probe 10: with mlflow.db locked the run warned, and its rerun took the fast path, so it never reached MLflow.
    The run is marked (mlflow_pending.json beside result.json, with what to log) and the next `python -m harness` of the
    same command, answered from its record, logs it."""
    import json
    import os

    from conftest import compose
    from harness.pipeline import run
    from harness.records.tracking import PENDING, create_store
    from harness.report.runs import read_mlflow

    db = tmp_path / "results" / "mlflow.db"
    uri = f"sqlite:///{db}"
    db.parent.mkdir(parents=True)
    create_store(uri)
    overrides = (f"paths.home={tmp_path}", f"paths.stages={shared_stages}", "algorithm=none", "eval=smoke",
                 "tracking=mlflow", f"tracking.uri={uri}")
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the store
    try:
        result = run(compose(*overrides))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    marker = Path(result["result_path"]).parent / PENDING
    assert "locked" in json.loads(marker.read_text())["reason"]

    out = subprocess.run([sys.executable, "-m", "harness", *overrides], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"logged run {result['run_id']} to MLflow" in out.stdout and "is complete" in out.stdout
    assert not marker.exists()
    (record,) = read_mlflow(uri, "harness")
    assert record.run_id == result["run_id"] and record.metrics["eval/gsm8k"] == result["benchmarks"]["gsm8k"]["score"]
    assert json.loads(Path(result["result_path"]).read_text())["mlflow_run_id"] is not None
