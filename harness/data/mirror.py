"""Offline mirrors of hub datasets, for air-gapped compute nodes.

    <mirror>/
        manifest.json                                   one entry per mirrored split (hub id, config, split,
                                                        revision, rows, sha256 of the file, file, fetched_at)
        <hub_id>/<config>/<split>@<revision>.jsonl      the rows, as the hub serves them

A connected machine writes the mirror (`python -m harness.data prefetch ...`); runs pointed at it (`paths.mirror=` or
$HARNESS_MIRROR) read only from it and never touch the network. A missing entry is an error naming the command that
fetches it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import NamedTuple

from datasets import Dataset, load_dataset
from filelock import FileLock

MANIFEST = "manifest.json"


class MirrorMissing(FileNotFoundError):
    """The mirror has no copy of a split the run needs (or the machine is offline and has no mirror)."""


# Hub repos that are loading scripts, which datasets 4+ refuses ("Dataset scripts are no longer supported"): a source
# naming one must read its files through `data_files` instead. Evidence per repo in the comment.
SCRIPT_REPOS = {
    # lm-eval issue #2843 / PR #2845 (commit 908ac2b24) moved BBH to SaylorTwift/bbh for this reason
    "lukaemon/bbh": "use hub_id SaylorTwift/bbh (same configs, split and fields; lm-eval 0.4.13's own source)",
    # alpaca_eval 0.6.6 constants.py loads it with trust_remote_code=True; tatsu-lab/alpaca_eval issue #454
    "tatsu-lab/alpaca_eval": "set data_files: hf://datasets/tatsu-lab/alpaca_eval@{revision}/<config>.json",
    # the AlpacaFarm repo is a loading script too (see conf/dataset/alpacafarm*.yaml)
    "tatsu-lab/alpaca_farm": "set data_files to the JSON file of the split (hf://datasets/tatsu-lab/alpaca_farm@...)",
}
COMMIT_LENGTH = 40


class HubSplit(NamedTuple):
    """One split of a hub dataset: the unit the mirror stores. `data_files` (a URL or hf:// path; "{revision}" is
    filled in) is for sources not loadable by hub id (PRM800k lives on GitHub; AlpacaFarm and AlpacaEval are loading
    scripts, which datasets 4+ refuses)."""

    hub_id: str
    config: str | None
    split: str
    revision: str | None
    data_files: str | None = None

    def load(self, mirror: str | None, prefetch_hint: str = "python -m harness.data prefetch ...") -> Dataset:
        return load_hub(self.hub_id, self.config, self.split, self.revision, mirror, prefetch_hint, self.data_files)


def check_source(source: HubSplit, owner: str, need_revision: bool = False) -> str | None:
    """Refuse a source datasets cannot load (a loading-script repo read by id) or one without a revision where one is
    required; returns a warning when the revision is a branch rather than a commit (it can move), else None."""
    if source.hub_id in SCRIPT_REPOS and not source.data_files:
        raise ValueError(f"{owner}: {source.hub_id} is a loading-script dataset, which datasets 4+ refuses; "
                         f"{SCRIPT_REPOS[source.hub_id]}")
    if need_revision and not source.revision:
        raise ValueError(f"{owner}: hub source {source.hub_id} has no `revision`; set revision: <commit> (or the "
                         f"branch, e.g. main, to follow it knowingly)")
    rev = source.revision
    if rev and not (len(rev) == COMMIT_LENGTH and all(c in "0123456789abcdef" for c in rev)):
        return f"{owner}: {source.hub_id} is read at {rev!r}, a branch or tag, not a commit: it may change under this config"
    return None


def fill_data_files(data_files: str, revision: str | None) -> str:
    return data_files.replace("{revision}", revision or "main")


def builder(data_files: str) -> str:
    """The datasets builder for a file: parquet for .parquet, else json (JSON and JSON lines)."""
    return "parquet" if data_files.endswith(".parquet") else "json"


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def entry_path(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None) -> Path:
    return Path(mirror) / hub_id / (config or "default") / f"{split}@{revision or 'main'}.jsonl"


def read_manifest(mirror: str | Path) -> list[dict]:
    path = Path(mirror) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else []


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_to_mirror(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None, ds: Dataset) -> dict:
    """Write `ds` as the mirror's copy of (hub_id, config, split, revision) and record it in the manifest."""
    path = entry_path(mirror, hub_id, config, split, revision)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    ds.to_json(str(tmp), lines=True, force_ascii=False)
    tmp.replace(path)
    entry = {"hub_id": hub_id, "config": config, "split": split, "revision": revision, "rows": len(ds),
             "sha256": _sha256(path), "file": str(path.relative_to(mirror)), "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with FileLock(str(Path(mirror) / (MANIFEST + ".lock"))):
        manifest = [e for e in read_manifest(mirror) if e["file"] != entry["file"]] + [entry]
        (Path(mirror) / MANIFEST).write_text(json.dumps(sorted(manifest, key=lambda e: e["file"]), indent=1))
    return entry


def load_hub(hub_id: str, config: str | None, split: str, revision: str | None, mirror: str | None,
             prefetch_hint: str = "python -m harness.data prefetch ...", data_files: str | None = None) -> Dataset:
    """A hub split, from the mirror when one is set (never the network then), else from the hub."""
    what = f"{hub_id} (config {config or 'default'}, split {split}, revision {revision or 'main'})"
    if mirror:
        path = entry_path(mirror, hub_id, config, split, revision)
        if not path.exists():
            raise MirrorMissing(
                f"{what} is not in the offline mirror {mirror} (expected {path}). On a machine with network access "
                f"run:\n    {prefetch_hint} paths.mirror={mirror}"
            )
        return load_dataset("json", data_files=str(path), split="train")
    try:
        if data_files:
            files = fill_data_files(data_files, revision)
            return load_dataset(builder(files), data_files=files, split="train")
        return load_dataset(hub_id, config, split=split, revision=revision)
    except Exception as e:
        if not offline():
            raise
        # Offline and not in the HF cache: say how to get it instead of the hub client's connection error.
        raise MirrorMissing(
            f"{what} is needed but the hub is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and no mirror is set. On "
            f"a machine with network access run:\n    {prefetch_hint} paths.mirror=<dir>\nthen run with "
            f"paths.mirror=<dir> (or HARNESS_MIRROR=<dir>). ({type(e).__name__}: {e})"
        ) from e


def entry_sha256(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None) -> str | None:
    """Checksum the manifest records for an entry (None if absent): part of a cached dataset's identity."""
    file = str(entry_path(mirror, hub_id, config, split, revision).relative_to(mirror))
    return next((e["sha256"] for e in read_manifest(mirror) if e["file"] == file), None)
