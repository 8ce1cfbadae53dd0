"""Prepared datasets cached by identity, so the second load of a dataset is a memory-mapped read.

    <stages>/data/<key>/
        spec.json     what the key was computed from (dataset config, split, source checksums, library versions)
        rows/         the normalised rows (Dataset.save_to_disk)
        COMPLETE      the load report; written last

Uses the same content-addressed stages as models and evaluations (harness.records.stages): a half-written entry is never
read, and two processes preparing the same dataset prepare it once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from datasets import load_from_disk

from harness.data.validate import DataError, DataReport, Prepared
from harness.records.stages import Stage


def nonempty(prepared: Prepared, label: str) -> Prepared:
    """A selection without rows fails here, before it is cached (a 0-row cache entry breaks every later read)."""
    if len(prepared.dataset) == 0:
        raise DataError(f"data {label}: the selection yielded no rows (check max_samples, the split and the filters); "
                        "nothing was cached")
    return prepared


def cached(spec: dict | None, root: str | None, build: Callable[[], Prepared], label: str) -> Prepared:
    """`build()` once per `spec` under `root`; no cache when either is None (e.g. an unpinned hub revision)."""
    if spec is None or root is None:
        return nonempty(build(), label)
    stage = Stage("data", spec, Path(root))
    built: list[Prepared] = []

    def work(out: Path) -> dict:
        prepared = nonempty(build(), label)
        prepared.dataset.save_to_disk(str(out / "rows"))
        built.append(prepared)
        return {"report": prepared.report.to_dict()}

    result, _ = stage.run(work, label=f"data {label} {stage.key}")
    if built:
        built[0].key = stage.key
        return built[0]
    return Prepared(load_from_disk(str(stage.dir / "rows")), DataReport(**result["report"]), stage.key)
