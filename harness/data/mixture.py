"""Mixtures: a dataset made of other dataset entries, each with the rows it contributes (its weight).

    python -m harness.data describe dataset=mix dataset.source=mixture    # built from the component splits

`dataset.mixture` lists `{dataset: <conf/dataset entry>, max_samples: <rows drawn, seeded; null = all>}`. Each
component loads with its own config (its source, revision, seed), so `source=mixture` builds the Mix RM data from the
released component splits, and `source=upstream` on the mixture re-derives every component from its upstream set.
"""

from __future__ import annotations

from datasets import concatenate_datasets
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from harness.config.groups import CONF_DIR, options
from harness.data.validate import DataError, DataReport, Prepared


def dataset_config(name: str):
    """The composed `conf/dataset/<name>` entry, exactly what `dataset=<name>` gives a run."""
    if name not in options("dataset"):
        raise DataError(f"unknown dataset {name!r}; valid: {options('dataset')}")
    overrides = [f"dataset={name}"]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (python -m harness)
        return compose(config_name="config", overrides=overrides).dataset
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides).dataset


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
    ds = concatenate_datasets(parts).shuffle(seed=cfg.seed).flatten_indices()
    report.rows = len(ds)
    if cfg.max_samples is not None and len(ds) > cfg.max_samples:
        report.subsampled_from = len(ds)
        ds = ds.select(range(cfg.max_samples))
        report.rows = len(ds)
    return Prepared(ds, report)
