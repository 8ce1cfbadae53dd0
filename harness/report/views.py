"""Saved views of the MLflow runs page: one per table and figure, and one of every run, each with the table's scores
and the ablation axes as columns. Open

    <tracking server>/#/experiments/<experiment id>/runs?viewStateShareKey=table1

(`mlflow ui --backend-store-uri sqlite:///$PWD/results/mlflow.db`, key `harness` for every run). A view is MLflow's own
shared view state (what its "share" button writes), kept as an experiment tag `mlflow.sharedViewState.<key>`.
"""

from __future__ import annotations

import json

from harness.report.grid import AXES, BY_NAME, CATEGORIES_MEAN, Table, membership_tag
from harness.config.schema import CATEGORIES

VIEW_TAG = "mlflow.sharedViewState."
# The run tags that say which point of the grid a run is (harness.pipeline.run sets them).
AXIS_TAGS = (*AXES, "seed")
SCORES = (*(f"category/{c}" for c in CATEGORIES), "average")


def table_metrics(table: Table) -> list[str]:
    metrics = []
    for c in table.columns:
        for m in SCORES[:-1] if c.metric == CATEGORIES_MEAN else (c.metric,):
            if m not in metrics:
                metrics.append(m)
    return metrics


def view_state(search_filter: str, metrics: list[str]) -> str:
    return json.dumps({
        "searchFilter": search_filter, "orderByKey": "attributes.start_time", "orderByAsc": False,
        "selectedColumns": [f"metrics.`{m}`" for m in metrics] + [f"tags.`{t}`" for t in AXIS_TAGS],
    }, sort_keys=True)


def views() -> dict[str, str]:
    """View key -> MLflow's view state JSON: `harness` (every run) and one per table and figure."""
    out = {"harness": view_state("", ["eval/gsm8k", *SCORES])}
    for name, table in BY_NAME.items():
        out[name] = view_state(f"tags.{membership_tag(name)} = '1'", table_metrics(table))
    return out


def experiment_tags() -> dict[str, str]:
    """The views as the experiment tags MLflow reads them from (the tracker writes those the experiment lacks)."""
    return {VIEW_TAG + key: state for key, state in views().items()}
