"""Load a preference dataset into the one schema training uses.

Normalised row: `prompt`, `chosen`, `rejected` (lists of {role, content}; the two completions end with an assistant
turn and share the prompt), plus `source` and a stable `id`.
Sources: the released tulu-2.5 splits (as the paper), or local JSON-lines files in that schema.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset, load_dataset
from omegaconf import OmegaConf

from harness.data.mirror import load_hub
from harness.errors import ConfigError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
REQUIRED_COLUMNS = ("chosen", "rejected")


def asset_path(path: str) -> Path:
    """Relative paths in configs point into harness/assets/."""
    p = Path(path)
    return p if p.is_absolute() else ASSETS / p


def _messages(value) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


def normalize_pair(row: dict, source: str) -> dict:
    """tulu-2.5 rows hold two whole conversations; the prompt is their shared prefix."""
    chosen, rejected = _messages(row["chosen"]), _messages(row["rejected"])
    if "prompt" in row and isinstance(row["prompt"], list):
        prompt = _messages(row["prompt"])
    else:
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    key = json.dumps([prompt, chosen, rejected], sort_keys=True)
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "source": row.get("source") or source,
        "id": row.get("id") or hashlib.sha1(key.encode()).hexdigest()[:16],
    }


def _raw(cfg, split: str, mirror: str | None) -> Dataset:
    if cfg.source == "files":
        if not cfg.files or split not in cfg.files:
            raise ValueError(f"dataset {cfg.name!r} has no file for split {split!r}; files: {dict(cfg.files or {})}")
        return load_dataset("json", data_files=str(asset_path(cfg.files[split])), split="train")
    if cfg.source == "tulu25":
        return load_hub(cfg.hub_id, None, cfg.split, cfg.revision, mirror, f"python -m harness.data prefetch dataset={cfg.name}")
    raise ValueError(f"dataset {cfg.name!r}: unknown source {cfg.source!r}; valid: files, tulu25")


def load_preferences(cfg, split: str | None = None, mirror: str | None = None) -> Dataset:
    split = split or cfg.train_split
    raw = _raw(cfg, split, mirror)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.column_names]
    if missing:
        raise ConfigError(
            f"dataset {cfg.name!r} (split {split!r}) is missing column(s) {missing}: "
            f"expected {list(REQUIRED_COLUMNS)} (+ optional prompt, source, id), found {raw.column_names}"
        )
    rows = [normalize_pair(r, cfg.name) for r in raw]
    ds = Dataset.from_list(rows)
    if cfg.max_samples and len(ds) > cfg.max_samples:
        ds = ds.shuffle(seed=cfg.seed).select(range(cfg.max_samples))
    return ds


def identity(cfg) -> dict:
    """What determines the rows a dataset config yields: the config, plus the bytes of local files."""
    ident = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in ("label", "paper_rows", "max_bad_fraction")}
    if cfg.source == "files":
        ident["file_sha256"] = {split: hashlib.sha256(asset_path(p).read_bytes()).hexdigest() for split, p in (cfg.files or {}).items()}
    return ident
