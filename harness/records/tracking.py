"""MLflow tracking that never costs a run: if the store cannot be reached, one warning, and results go to disk only.

Each harness run is one MLflow run: params = the flattened config, tags = the ablation axes and the paper tables the
run fills (`table`, `table_<n>`: the pipeline adds them, harness.report.grid.table_tags), metrics = `train/...` (TRL's own curves via
report_to=mlflow land in the same run), `eval/<benchmark>`, `category/<name>`, `average`; artifacts = the resolved
config and the result JSON. A reward model trained inside a run logs into a nested child run (its trainer arguments
would otherwise clash with the policy's params). Runs of a sweep (`sweep=<id>`) nest under one parent run per sweep.
The experiment carries the tags its creator gives (`experiment_tags`: the pipeline passes the saved views of the
runs page, one per table, harness.report.views): the records layer knows no table.

A local SQLite store is created under a file lock beside it (`mlflow.db.lock`), whole or not at all: MLflow's schema
is built in a temporary file that is then renamed into place, so two first runs started together are both logged,
and a disk that fills while the schema is built leaves no half-made store behind. A run whose logging failed (store
locked or unreachable, disk full) is marked, `mlflow_pending.json` beside its result.json holding what to log; the
next invocation of its command logs it from the record, even when everything else is complete (harness.__main__).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness import console
from harness.records.results import read_items, stages_digest
from harness.records.stages import write_atomic

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 500
# Tag of a sweep's parent run (its value: the sweep id, as in its runs' `sweep` tag).
SWEEP_PARENT_TAG = "sweep_parent"
# Where the process writing a run lives: a rerun tells a killed run (continued) from a live one (left alone).
HOST_TAG, PID_TAG = "harness.host", "harness.pid"
# Beside a run's result.json when its logging failed: what the next invocation logs (Tracker.log_pending).
PENDING = "mlflow_pending.json"


def _alive(tags: dict) -> bool:
    """Whether the process that started a RUNNING MLflow run still runs (assumed so when it ran on another host)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not (tags.get(PID_TAG) or "").isdigit():
        return tags.get(HOST_TAG) is not None
    try:
        os.kill(int(tags[PID_TAG]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sqlite_path(uri: str | None) -> Path | None:
    """The database file of a local SQLite store, None for any other store."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).resolve()


def local_artifact_root(uri: str | None) -> str | None:
    """Artifacts beside a local SQLite store (MLflow's default is ./mlruns under whatever directory a run starts in)."""
    path = sqlite_path(uri)
    return None if path is None else str(path.parent / "mlartifacts")


@contextlib.contextmanager
def store_lock(uri: str | None):
    """Held while a local store is created or its experiment set up: MLflow's schema creation is not safe against
    another process doing the same (two first runs broke the store for good)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield


def create_store(uri: str | None) -> None:
    """Create a local SQLite store whole or not at all (under `store_lock`): MLflow's migrations run on a temporary
    file beside it, renamed into place when they are done; a failure (a full disk) removes it and leaves nothing."""
    path = sqlite_path(uri)
    if path is None or (path.exists() and path.stat().st_size > 0):
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    # a name of its own per attempt: MLflow keeps an engine per database URI, and one left by a failed attempt would
    # still point at the removed file
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        SqlAlchemyStore(f"sqlite:///{tmp}", local_artifact_root(uri)).engine.dispose()
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out |= flatten(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: d}


class Tracker:
    def __init__(self, cfg, experiment_tags: dict[str, str] | None = None):
        self.cfg = cfg
        self.experiment_tags = experiment_tags or {}
        self.active = cfg.backend == "mlflow"
        self.run_id: str | None = None
        # Why logging failed (None: it did not, or tracking is off), and what `start` was given, for PENDING.
        self.failed: str | None = None
        self._started: dict = {}
        self._warned = False

    # ----------------------------------------------------------------------------------------- safety
    def _disable(self, exc: Exception) -> None:
        self.active = False
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        self.failed = self.failed or f"{type(exc).__name__}: {first}"
        if not self._warned:
            self._warned = True
            msg = (f"MLflow tracking at {self.cfg.uri} is unavailable ({type(exc).__name__}: {exc}); "
                   "the run continues and writes its results to disk only")
            warnings.warn(msg, stacklevel=3)
            console.say(f"[harness] WARNING: {msg}")

    def _safe(self, fn, *args, **kwargs):
        if not self.active:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # tracking must never fail a run
            self._disable(exc)
            return None

    def _probe(self) -> None:
        uri = self.cfg.uri or ""
        if uri.startswith(("http://", "https://")):
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=self.cfg.timeout_s)

    # ----------------------------------------------------------------------------------------- runs
    def start(self, run_name: str, params: dict, tags: dict, parent_run_id: str | None = None,
              sweep: str | None = None, lock_dir: str | None = None) -> None:
        """Start the run; with `sweep`, nested under that sweep's parent run (created by the sweep's first run;
        `lock_dir`, a directory all the sweep's runs share, makes concurrent first runs create only one)."""
        if not self.active:
            return
        self._started = {"params": params, "tags": tags, "sweep": sweep}
        try:
            self._probe()
            import mlflow

            os.environ["MLFLOW_TRACKING_URI"] = self.cfg.uri
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(self.cfg.timeout_s)))
            mlflow.set_tracking_uri(self.cfg.uri)
            with store_lock(self.cfg.uri):
                create_store(self.cfg.uri)
                experiment = self._experiment(mlflow)
            while mlflow.active_run():
                mlflow.end_run()
            client = mlflow.MlflowClient()
            if sweep:
                parent_run_id = self._sweep_parent(client, experiment.experiment_id, sweep, lock_dir)
            tags = {**tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
            earlier = self._earlier(client, experiment.experiment_id, tags.get("run_id"), parent_run_id)
            if earlier:  # a rerun continues the run's MLflow run (which a killed process may have left RUNNING)
                run = mlflow.start_run(run_id=earlier, tags=tags)
            else:
                run = mlflow.start_run(run_name=run_name, tags=tags, parent_run_id=parent_run_id)
            self.run_id = run.info.run_id
            flat = {k: str(v)[:MAX_PARAM_CHARS] for k, v in flatten(params).items()}
            items = list(flat.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
        except Exception as exc:
            self._disable(exc)

    def _experiment(self, mlflow):
        from mlflow.exceptions import MlflowException

        if mlflow.get_experiment_by_name(self.cfg.experiment) is None:
            with contextlib.suppress(MlflowException):  # a concurrent run created it meanwhile
                mlflow.create_experiment(self.cfg.experiment, artifact_location=local_artifact_root(self.cfg.uri))
        experiment = mlflow.set_experiment(self.cfg.experiment)
        try:
            client = mlflow.MlflowClient()
            for key, value in self.experiment_tags.items():  # only those it lacks (or has in an older form)
                if experiment.tags.get(key) != value:
                    client.set_experiment_tag(experiment.experiment_id, key, value)
        except Exception as exc:  # views are a convenience: the run is logged without them
            log.warning("could not save the MLflow views of experiment %s: %s", self.cfg.experiment, exc)
        return experiment

    @staticmethod
    def _earlier(client, experiment_id: str, run_id: str | None, parent_run_id: str | None) -> str | None:
        """The MLflow run an earlier invocation of the same harness run left under the same parent (sweep), unless a
        live process still writes it; RUNNING ones whose process is gone (killed) are marked KILLED."""
        if not run_id:
            return None
        found = client.search_runs([experiment_id], f"tags.run_id = '{run_id}'", order_by=["attributes.start_time DESC"])
        reusable = None
        for run in found:
            if run.info.status == "RUNNING" and _alive(run.data.tags):
                continue
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status="KILLED")
            if run.data.tags.get("mlflow.parentRunId") == parent_run_id:
                reusable = reusable or run.info.run_id
        return reusable

    @staticmethod
    def _sweep_parent(client, experiment_id: str, sweep: str, lock_dir: str | None) -> str:
        lock = contextlib.nullcontext()
        if lock_dir:
            Path(lock_dir).mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(Path(lock_dir) / ".mlflow-sweep.lock"))
        with lock:
            found = client.search_runs([experiment_id], f"tags.{SWEEP_PARENT_TAG} = '{sweep}'", max_results=1,
                                       order_by=["attributes.start_time ASC"])
            if found:
                return found[0].info.run_id
            parent = client.create_run(experiment_id, run_name=f"sweep {sweep}",
                                       tags={"sweep": sweep, SWEEP_PARENT_TAG: sweep})
            client.set_terminated(parent.info.run_id)  # a container: its runs carry the work
            return parent.info.run_id

    @property
    def report_to(self) -> str:
        """What TRL trainers should report to: into this run when it is live."""
        return "mlflow" if self.active and self.run_id else "none"

    @property
    def current_run_id(self) -> str | None:
        """The innermost live MLflow run (a child's, inside `child`), where a trainer in another process logs."""
        if not (self.active and self.run_id):
            return None
        import mlflow

        run = mlflow.active_run()
        return run.info.run_id if run else self.run_id

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
        if clean:
            self._safe(mlflow.log_metrics, clean, step=step)

    def log_history(self, history: list[dict], prefix: str = "") -> None:
        """Training curves of a reused stage, under the names TRL logs live (as in the run that trained it)."""
        for entry in history:
            step = entry.get("step")
            self.log_metrics({prefix + k: v for k, v in entry.items() if k not in ("step", "epoch")}, step=step)

    def set_tags(self, tags: dict) -> None:
        import mlflow

        self._safe(mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        import mlflow

        self._safe(mlflow.log_dict, obj, artifact_file)

    @contextlib.contextmanager
    def child(self, run_name: str):
        """A nested run for a sub-stage (e.g. reward-model training), so its trainer's params do not clash."""
        if not self.active:
            yield
            return
        import mlflow

        started = self._safe(mlflow.start_run, run_name=run_name, nested=True)
        try:
            yield
        finally:
            if started is not None:
                self._safe(mlflow.end_run)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        import mlflow

        self._safe(mlflow.end_run, status=status)

    # ----------------------------------------------------------------------------------------- results
    def log_result(self, result: dict, items: dict | None = None) -> None:
        """A recorded run's scores, categories, training numbers, provenance tags and its config, result and item
        files."""
        scores = {k: b.get("score") for k, b in result["benchmarks"].items()}
        self.log_metrics({f"eval/{k}": v for k, v in scores.items()}
                         | {f"category/{k}": v for k, v in result["categories"].items()} | {"average": result["average"]}
                         | {f"train/{k}": v for k, v in result.get("training", {}).items() if isinstance(v, (int, float))})
        tags = {"recorded_at": result["recorded_at"], "git_commit": result["provenance"]["git_commit"],
                "stages_digest": stages_digest(result)}
        self.set_tags({k: v for k, v in tags.items() if v is not None})
        self.log_dict(result.get("config", {}), "config.json")
        self.log_dict(result, "result.json")
        if items is not None:
            self.log_dict(items, "items.json")

    def settle(self, run_dir: Path) -> None:
        """Once the result is on disk: a run whose logging failed is marked (PENDING, with what to log), so that the
        next invocation logs it; a logged run's marker is removed."""
        marker = Path(run_dir) / PENDING
        if self.cfg.backend != "mlflow":
            return
        if self.failed is None:
            marker.unlink(missing_ok=True)
            return
        write_atomic(marker, json.dumps({"reason": self.failed, **self._started}, default=str))
        console.say(f"[harness] WARNING: run {Path(run_dir).name} is not in MLflow ({self.failed}); the next "
                    "`python -m harness` of the same command logs it")


def log_pending(cfg, results_dir: str | Path, result: dict) -> None:
    """Log a recorded run whose own logging failed (its PENDING marker), from its record: the same params, tags,
    training curves, scores and files as the run itself would have logged."""
    run_dir = Path(results_dir) / "runs" / result["run_id"]
    marker = run_dir / PENDING
    if cfg.backend != "mlflow" or not marker.exists():
        return
    pending = json.loads(marker.read_text())
    tracker = Tracker(cfg)
    tracker.start(result["run_id"], params=pending["params"], tags=pending["tags"], sweep=pending.get("sweep"),
                  lock_dir=str(results_dir))
    history = Path((result.get("stages", {}).get("policy") or {}).get("dir") or run_dir) / "log_history.json"
    if history.exists():
        tracker.log_history(json.loads(history.read_text()))
    tracker.log_result(result, read_items(results_dir, result["run_id"]))
    tracker.end("FINISHED")
    if tracker.failed is None:
        write_atomic(run_dir / "result.json", json.dumps(result | {"mlflow_run_id": tracker.run_id}, indent=2, default=str))
        marker.unlink()
        console.say(f"[harness] logged run {result['run_id']} to MLflow (its own logging had failed: {pending['reason']})")
