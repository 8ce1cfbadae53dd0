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


class HubSplit(NamedTuple):
    """One split of a hub dataset: the unit the mirror stores. `data_files` (a URL or hf:// path) is for sources that
    are not loadable by hub id (PRM800k lives on GitHub; AlpacaFarm is a loading script, which datasets 4+ refuses)."""

    hub_id: str
    config: str | None
    split: str
    revision: str | None
    data_files: str | None = None

    def load(self, mirror: str | None, prefetch_hint: str = "python -m harness.data prefetch ...") -> Dataset:
        return load_hub(self.hub_id, self.config, self.split, self.revision, mirror, prefetch_hint, self.data_files)


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_unreachable(timeout_s: float = 5.0) -> str | None:
    """Why the hub endpoint cannot be reached (a TCP connect, seconds at most), or None. With a proxy configured the
    connection goes through it, so the probe is skipped and the hub client's own error stands."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"
    return None


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
        if not offline() and not data_files:
            why = hub_unreachable()
            if why:  # fail now, not after the hub client's minute of retries
                raise ConnectionError(f"the hub is unreachable: {why}")
        if data_files:
            return load_dataset("json", data_files=data_files, split="train")
        return load_dataset(hub_id, config, split=split, revision=revision)
    except Exception as e:
        if not offline() and not (isinstance(e, ConnectionError) and "the hub is unreachable" in str(e)):
            raise
        # Offline and not in the HF cache: say how to get it instead of the hub client's connection error.
        raise MirrorMissing(
            f"{what} is needed but the hub is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, or no network) and no "
            f"mirror is set. On "
            f"a machine with network access run:\n    {prefetch_hint} paths.mirror=<dir>\nthen run with "
            f"paths.mirror=<dir> (or HARNESS_MIRROR=<dir>). ({type(e).__name__}: {e})"
        ) from e


def entry_sha256(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None) -> str | None:
    """Checksum the manifest records for an entry (None if absent): part of a cached dataset's identity."""
    file = str(entry_path(mirror, hub_id, config, split, revision).relative_to(mirror))
    return next((e["sha256"] for e in read_manifest(mirror) if e["file"] == file), None)
