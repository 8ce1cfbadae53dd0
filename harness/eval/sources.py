"""Benchmark data: bundled mini mirrors (relative `files`), local files, or the hub; then the configured subset."""

from __future__ import annotations

import json
import random
from pathlib import Path

from harness.data.mirror import load_hub

from harness.data.preferences import asset_path


def load_rows(bench, mirror: str | None = None) -> list[dict]:
    if bench.files:
        if bench.split not in bench.files:
            raise ValueError(f"benchmark {bench.name!r}: no file for split {bench.split!r}; files: {dict(bench.files)}")
        path = asset_path(bench.files[bench.split])
        if not path.exists():
            raise FileNotFoundError(f"benchmark {bench.name!r}: data file {path} does not exist")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not bench.hub_id:
        raise ValueError(f"benchmark {bench.name!r} sets neither `files` nor `hub_id`")
    return list(load_hub(bench.hub_id, bench.hub_config, bench.split, bench.revision, mirror,
                         f"python -m harness.data prefetch eval=<suite with {bench.name}>"))


def subset(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset (protocol: GSM8k 200 problems, seed 42), in a stable order."""
    if limit is None or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    return path
