"""A benchmark's data sources: the benchmark and the variants its options name (AlpacaEval's reference outputs,
TruthfulQA's MC2 config), and the check that each hub source can be loaded and is pinned. Imports no ML library."""

from __future__ import annotations

from types import SimpleNamespace

from omegaconf import OmegaConf

from harness.data.revisions import check_source

# Keys of a benchmark's `options` entry that make it a variant reading other data (AlpacaEval's reference outputs,
# TruthfulQA's MC2 config): the variant is the benchmark with these keys replaced.
SOURCE_KEYS = ("hub_id", "hub_config", "split", "revision", "data_files", "files")
# How a benchmark's `limit` rows are drawn (`subset_draw`, harness.eval.sources.subset).
SUBSET_DRAWS = ("sample", "shuffle")


def variants(bench) -> list:
    """The benchmark and every data variant its options name."""
    out = [bench]
    for opt in bench.options.values():
        if OmegaConf.is_dict(opt) and any(k in opt for k in SOURCE_KEYS):
            out.append(OmegaConf.merge(bench, {k: opt[k] for k in SOURCE_KEYS if k in opt}))
    return out


def check_sources(bench) -> list[str]:
    """Refuse a benchmark whose hub sources datasets cannot load or that carry no revision (the error names the fix);
    returns one warning per source read at a branch rather than a commit."""
    warnings = []
    for v in _sources(bench):
        if v.files or not v.hub_id:
            continue
        warning = check_source(v, f"benchmark {bench.name!r}", need_revision=True)
        warnings += [warning] if warning else []
    return warnings


def _sources(bench) -> list[SimpleNamespace]:
    """The source fields of `variants(bench)`, without merging configs (a sweep plan checks ~400 benchmarks)."""
    base = {k: bench[k] for k in SOURCE_KEYS}
    overrides = [opt for opt in bench.options.values() if OmegaConf.is_dict(opt) and any(k in opt for k in SOURCE_KEYS)]
    return [SimpleNamespace(**(base | {k: opt[k] for k in SOURCE_KEYS if k in opt})) for opt in [{}, *overrides]]
