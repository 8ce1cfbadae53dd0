"""The runs a report is built from, read from the results index on disk or from MLflow, as the same records.

Disk: `results/index.jsonl` (harness.records.results) and each run's result.json and items.json. MLflow: every
finished run that recorded results (its tags carry the axes and provenance, its metrics the scores, its artifacts the
same result.json and items.json; harness.pipeline.record). A configuration run several times in MLflow counts once,
as its latest run, as the index keeps one row per run id. A run recorded without its result (an older store) has no
configuration and no items: it fills cells by its axes alone and has no interval.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

from harness.config.errors import ConfigError
from harness.report.grid import AXES
from harness.records.results import ITEMS_FILE, read_index, read_items

log = logging.getLogger(__name__)

METRIC_PREFIXES = ("eval/", "category/")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    axes: dict[str, str]
    # eval/<benchmark>, category/<name>, average: only the scores the run has.
    metrics: dict[str, float]
    config_hash: str
    recorded_at: str
    git_commit: str
    seed: int
    # Digest of the stages that produced the scores (harness.records.results.stages_digest): runs that differ only
    # in a seed no stage reads share it, and count once in a cell. None for runs recorded before it existed.
    stages: str | None = None
    # The configuration that determines the run's numbers (harness.records.identity.determining_config of its
    # recorded config), None when not recorded.
    config: dict | None = None
    sweep: str | None = None
    # Scores of the saved checkpoints (algorithm.eval_every): step -> metric -> score.
    curve: dict | None = None
    # Loads the run's item tables (harness.eval.items) when an interval needs them.
    load_items: Callable[[], dict | None] = field(default=lambda: None, compare=False, repr=False)

    def items(self) -> dict | None:
        return self.load_items()


def determining(config: dict | None) -> dict | None:
    """The determining configuration of a recorded config (None when it cannot be read with this code)."""
    if not config:
        return None
    from omegaconf import OmegaConf

    from harness.records.identity import determining_config

    try:
        return determining_config(OmegaConf.create(config))
    except Exception as exc:  # e.g. an algorithm module that no longer exists
        log.warning("cannot read the configuration of a recorded run: %s", exc)
        return None


def from_result(result: dict | None) -> dict:
    """The RunRecord fields a run's result.json adds to its index row or MLflow run."""
    result = result or {}
    config = result.get("config")
    return {"config": determining(config), "sweep": (config or {}).get("sweep"),
            "curve": {int(k): v for k, v in result["curve"].items()} if result.get("curve") else None}


def is_score(key: str) -> bool:
    return key.startswith(METRIC_PREFIXES) or key == "average"


def from_index_row(row: dict, results: Path | None = None) -> RunRecord:
    result = None
    if results is not None:
        try:
            result = json.loads((Path(results) / "runs" / row["run_id"] / "result.json").read_text())
        except (OSError, ValueError):
            pass
    return RunRecord(
        run_id=row["run_id"],
        axes={a: str(row.get(a, "none")) for a in AXES},
        metrics={k: float(v) for k, v in row.items() if is_score(k) and v is not None},
        config_hash=row["config_hash"], recorded_at=row["recorded_at"], git_commit=row.get("git_commit", "unknown"),
        seed=int(row["seed"]), stages=row.get("stages_digest"), **from_result(result),
        load_items=cache(lambda: read_items(results, row["run_id"])) if results is not None else (lambda: None),
    )


def read_disk(results: Path) -> list[RunRecord]:
    index = Path(results) / "index.jsonl"
    if not index.exists():
        raise ConfigError(f"no results index at {index}: run `python -m harness ...` first, or pass --results DIR "
                          "(the results directory of your runs)")
    results = Path(results)
    return sorted((from_index_row(r, results) for r in read_index(results)), key=lambda r: r.run_id)


def run_tracking(results: Path) -> tuple[str, str]:
    """The tracking URI and experiment a run writing to `results` uses (conf/tracking/mlflow.yaml)."""
    from harness.config.compose import compose

    cfg = compose([f"paths.results={results}", "tracking=mlflow"])
    return cfg.tracking.uri, cfg.tracking.experiment


def artifact(client, mlflow_run_id: str, name: str) -> dict | None:
    """A JSON artifact of an MLflow run (result.json, items.json), None when it has none."""
    if name not in {a.path for a in client.list_artifacts(mlflow_run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(mlflow_run_id, name, tmp)).read_text())


def from_mlflow_run(run, client=None) -> RunRecord:
    tags = run.data.tags
    mlflow_id = run.info.run_id
    result = artifact(client, mlflow_id, "result.json") if client is not None else None
    return RunRecord(
        run_id=tags["run_id"],
        axes={a: tags.get(a, "none") for a in AXES},
        metrics={k: float(v) for k, v in run.data.metrics.items() if is_score(k)},
        config_hash=tags["config_hash"], recorded_at=tags["recorded_at"], git_commit=tags.get("git_commit", "unknown"),
        seed=int(tags["seed"]), stages=tags.get("stages_digest"), **from_result(result),
        load_items=cache(lambda: artifact(client, mlflow_id, ITEMS_FILE)) if client is not None else (lambda: None),
    )


# Tags a run's record needs (harness.pipeline: set at its start and when it recorded results).
RECORD_TAGS = ("run_id", "recorded_at", "config_hash", "seed")


def read_mlflow(uri: str, experiment: str, filter_string: str = "") -> list[RunRecord]:
    """The latest finished run of each run id in the experiment (matching an MLflow search filter, if given) that
    recorded results; a store that cannot be read is one error naming it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        names = None if exp is not None else sorted(e.name for e in client.search_experiments())
    except Exception as exc:  # noqa: BLE001  (whatever the store's client raises: named in one line)
        raise ConfigError(f"cannot read the MLflow store at {uri}: {type(exc).__name__}: "
                          f"{(str(exc).strip().splitlines() or [''])[0][:300]}") from None
    if exp is None:
        raise ConfigError(f"no MLflow experiment {experiment!r} at {uri}; experiments there: {names}")
    latest: dict[str, object] = {}
    try:
        for run in _all_runs(client, exp.experiment_id, filter_string):
            tags = run.data.tags
            if any(tag not in tags for tag in RECORD_TAGS):
                continue  # a sweep's parent, a nested reward-model run, or a run that never recorded results
            earlier = latest.get(tags["run_id"])
            if earlier is None or tags["recorded_at"] >= earlier.data.tags["recorded_at"]:  # runs come oldest first
                latest[tags["run_id"]] = run
    except MlflowException as exc:
        raise ConfigError(f"MLflow rejected the filter {filter_string!r}: {exc.message.splitlines()[0]}") from None
    return sorted((from_mlflow_run(run, client) for run in latest.values()), key=lambda r: r.run_id)


def _all_runs(client, experiment_id: str, filter_string: str = ""):
    token = None
    where = "attributes.status = 'FINISHED'" + (f" and {filter_string}" if filter_string else "")
    while True:
        page = client.search_runs([experiment_id], where, max_results=1000,
                                  page_token=token, order_by=["attributes.start_time ASC"])
        yield from page
        token = page.token
        if not token:
            return
