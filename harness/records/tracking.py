"""MLflow tracking that never costs a run: if the store cannot be reached, one warning, and results go to disk only.

Each harness run is one MLflow run: params = the flattened config, tags = the ablation axes and the paper tables the
run fills (`table`, `table_<n>`: the pipeline adds them, harness.report.grid.table_tags), metrics = `train/...` (TRL's own curves via
report_to=mlflow land in the same run), `eval/<benchmark>`, `category/<name>`, `average`; artifacts = the resolved
config and the result JSON. A reward model trained inside a run logs into a nested child run (its trainer arguments
would otherwise clash with the policy's params). Runs of a sweep (`sweep=<id>`) nest under one parent run per sweep.
The experiment carries the tags its creator gives (`experiment_tags`: the pipeline passes the saved views of the
runs page, one per table, harness.report.views): the records layer knows no table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness import console

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 500
# Tag of a sweep's parent run (its value: the sweep id, as in its runs' `sweep` tag).
SWEEP_PARENT_TAG = "sweep_parent"
# Where the process writing a run lives: a rerun tells a killed run (continued) from a live one (left alone).
HOST_TAG, PID_TAG = "harness.host", "harness.pid"


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


def local_artifact_root(uri: str | None) -> str | None:
    """Artifacts beside a local SQLite store (MLflow's default is ./mlruns under whatever directory a run starts in)."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    return str(Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts")


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
        self._warned = False

    # ----------------------------------------------------------------------------------------- safety
    def _disable(self, exc: Exception) -> None:
        self.active = False
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
        try:
            self._probe()
            import mlflow

            os.environ["MLFLOW_TRACKING_URI"] = self.cfg.uri
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(self.cfg.timeout_s)))
            mlflow.set_tracking_uri(self.cfg.uri)
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
