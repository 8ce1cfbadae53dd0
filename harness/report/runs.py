"""The runs a report is built from, read from the results index on disk or from MLflow, as the same records.

Disk: `results/index.jsonl` (harness.records.results). MLflow: every finished run that recorded results (its tags carry the
axes and provenance, its metrics the scores; harness.pipeline.record). A configuration run several times in MLflow
counts once, as its latest run, as the index keeps one row per run id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config.errors import ConfigError
from harness.report.grid import AXES
from harness.records.results import read_index

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


def is_score(key: str) -> bool:
    return key.startswith(METRIC_PREFIXES) or key == "average"


def from_index_row(row: dict) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        axes={a: str(row.get(a, "none")) for a in AXES},
        metrics={k: float(v) for k, v in row.items() if is_score(k) and v is not None},
        config_hash=row["config_hash"], recorded_at=row["recorded_at"], git_commit=row.get("git_commit", "unknown"),
        seed=int(row["seed"]), stages=row.get("stages_digest"),
    )


def read_disk(results: Path) -> list[RunRecord]:
    index = Path(results) / "index.jsonl"
    if not index.exists():
        raise ConfigError(f"no results index at {index}: run `python -m harness ...` first, or pass --results DIR "
                          "(the results directory of your runs)")
    return sorted((from_index_row(r) for r in read_index(Path(results))), key=lambda r: r.run_id)


def from_mlflow_run(run) -> RunRecord:
    tags = run.data.tags
    return RunRecord(
        run_id=tags["run_id"],
        axes={a: tags.get(a, "none") for a in AXES},
        metrics={k: float(v) for k, v in run.data.metrics.items() if is_score(k)},
        config_hash=tags["config_hash"], recorded_at=tags["recorded_at"], git_commit=tags.get("git_commit", "unknown"),
        seed=int(tags["seed"]), stages=tags.get("stages_digest"),
    )


# Tags a run's record needs (harness.pipeline: set at its start and when it recorded results).
RECORD_TAGS = ("run_id", "recorded_at", "config_hash", "seed")


def read_mlflow(uri: str, experiment: str) -> list[RunRecord]:
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
    latest: dict[str, RunRecord] = {}
    for run in _all_runs(client, exp.experiment_id):
        if any(tag not in run.data.tags for tag in RECORD_TAGS):
            continue  # a sweep's parent, a nested reward-model run, or a run that never recorded results
        rec = from_mlflow_run(run)
        if rec.run_id not in latest or rec.recorded_at >= latest[rec.run_id].recorded_at:  # runs come oldest first
            latest[rec.run_id] = rec
    return sorted(latest.values(), key=lambda r: r.run_id)


def _all_runs(client, experiment_id: str):
    token = None
    while True:
        page = client.search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=1000,
                                  page_token=token, order_by=["attributes.start_time ASC"])
        yield from page
        token = page.token
        if not token:
            return
