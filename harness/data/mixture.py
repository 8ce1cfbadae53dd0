"""Mixtures: a dataset made of other dataset entries, each with the rows it contributes (its weight).

    python -m harness.data describe dataset=mix dataset.source=mixture    # built from the component splits

`dataset.mixture` lists `{dataset: <conf/dataset entry>, max_samples: <rows drawn, seeded; null = all>}`. Each
component loads with its own config (its source, revision, seed), so `source=mixture` builds the Mix RM data from the
released component splits, and `source=upstream` on the mixture re-derives every component from its upstream set.
"""

from __future__ import annotations

from harness.config.groups import entry, options
from harness.data.validate import DataError, DataReport, Prepared


def dataset_config(name: str):
    """The composed `conf/dataset/<name>` entry, exactly what `dataset=<name>` gives a run."""
    if name not in options("dataset"):
        raise DataError(f"unknown dataset {name!r}; valid: {options('dataset')}")
    return entry("dataset", name)


def components(cfg) -> list:
    """The component configs of a mixture, with the mixture's per-component `max_samples` and, for
    `source=upstream`, the upstream source."""
    if not cfg.mixture:
        raise DataError(f"dataset {cfg.name!r} has source={cfg.source} but an empty `mixture` list")
    out = []
    for part in cfg.mixture:
        component = dataset_config(part.dataset)
        if part.max_samples is not None:
            component.max_samples = part.max_samples
        if cfg.source == "upstream":
            component.source = "upstream"
        out.append(component)
    return out


def prepare(cfg, split: str, mirror: str | None, cache: str | None, prepare_component) -> Prepared:
    """Each component prepared (and cached) on its own, then concatenated and shuffled with the mixture's seed."""
    report = DataReport(cfg.name)
    parts = []
    for component in components(cfg):
        prepared = prepare_component(component, None, mirror, cache)
        report.merge(prepared.report)
        report.parts[component.name] = len(prepared.dataset)
        parts.append(prepared.dataset)
    from datasets import concatenate_datasets

    ds = concatenate_datasets(parts).shuffle(seed=cfg.seed).flatten_indices()
    report.rows = len(ds)
    if cfg.max_samples is not None and len(ds) > cfg.max_samples:
        report.subsampled_from = len(ds)
        ds = ds.select(range(cfg.max_samples))
        report.rows = len(ds)
    return Prepared(ds, report)
