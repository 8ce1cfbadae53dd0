"""Offline mirrors of hub datasets, for air-gapped compute nodes.

    <mirror>/
        manifest.json                                   one entry per mirrored split (hub id, config, split,
                                                        revision, pinned, rows, sample, sha256 of the file, file,
                                                        fetched_at)
        <hub_id>/<config>/<split>@<revision>.parquet    the rows, as the hub serves them
        <hub_id>/<config>/<split>@<revision>.seed<S>-cap<N>.parquet
                                                        an upstream set: only the rows a run can use, the first N
                                                        of its seed-S shuffle (the conversion script's 500k cap);
                                                        the manifest's `sample` says so ({seed, cap, of_rows})
        models/<hub_id>@<revision>/                     a model's config, tokenizer and weights as the hub serves
                                                        them at the commit the revision resolved to (`--models`;
                                                        the manifest's entry: kind model, commit, files, bytes)

A connected machine writes the mirror (`python -m harness.data prefetch ...`); runs pointed at it (`paths.mirror=` or
$HARNESS_MIRROR) read only from it and never touch the network. A missing entry is an error naming the command that
fetches it. Parquet, so a 500k-row upstream sample stays a few hundred MB and is read memory-mapped. Imports no ML
library (datasets loads where rows are read): a run looks its models up here before torch loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from filelock import FileLock

from harness.config.errors import UserError
from harness.data.revisions import SCRIPT_REPOS, check_source, hub_revision, pinned, revision_label  # noqa: F401

if TYPE_CHECKING:
    from datasets import Dataset

MANIFEST = "manifest.json"


class MirrorMissing(UserError, FileNotFoundError):
    """The mirror has no copy of a split the run needs (or the machine is offline and has no mirror)."""


class HubSplit(NamedTuple):
    """One split of a hub dataset: the unit the mirror stores. `data_files`: the split's file, a path inside the repo
    ("data/{split}-00000-of-00001.jsonl") or a URL / hf:// path for sources not loadable by hub id (PRM800k lives on
    GitHub; AlpacaFarm is a loading script, which datasets 4+ refuses); unset, the repo's layout names the split's
    files (harness.data.hub). `seed` / `cap`: only the first `cap` rows of the split's seed-`seed` shuffle are read
    (and mirrored), as the paper's conversion script kept them (`cap` None: all rows, shuffled)."""

    hub_id: str
    config: str | None
    split: str
    revision: str | None
    data_files: str | None = None
    seed: int | None = None
    cap: int | None = None

    def load(self, mirror: str | None, prefetch_hint: str = "python -m harness.data prefetch ...") -> Dataset:
        return load_hub(self.hub_id, self.config, self.split, self.revision, mirror, prefetch_hint, self.data_files,
                        self.seed, self.cap)


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def entry_path(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None,
               seed: int | None = None, cap: int | None = None) -> Path:
    sample = "" if seed is None else f".seed{seed}-cap{cap if cap is not None else 'all'}"
    return Path(mirror) / hub_id / (config or "default") / f"{split}@{revision_label(revision)}{sample}.parquet"


def seeded_prefix(ds: Dataset, seed: int | None, cap: int | None) -> Dataset:
    """The first `cap` rows of `ds.shuffle(seed)` (all of them when cap is None): the paper's conversion script's
    `shuffle(seed).select(range(min(cap, n)))`. Unchanged when seed is None."""
    if seed is None:
        return ds
    ds = ds.shuffle(seed=seed)
    return ds.select(range(min(cap, len(ds)))) if cap is not None else ds


def hub_unreachable(data_files: str | None = None, timeout_s: float = 5.0) -> str | None:
    """Why the server a read goes to (the hub, or the host of a URL in `data_files`) cannot be reached (a TCP connect,
    seconds at most), or None; None too for a local file. With a proxy configured the connection goes through it, so
    the probe is skipped and the client's own error stands."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return None
    if data_files and data_files.startswith("/"):
        return None
    remote = data_files and "://" in data_files and not data_files.startswith("hf://")
    url = urlparse(data_files if remote else os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"
    return None


def no_connection(exc: BaseException | None) -> bool:
    """Whether `exc` or its causes say the network could not be reached (any HTTP client's connect error)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, socket.gaierror)) or type(exc).__name__ in ("ConnectError", "ConnectTimeout"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def read_manifest(mirror: str | Path) -> list[dict]:
    path = Path(mirror) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else []


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_to_mirror(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None, ds: Dataset,
                  seed: int | None = None, cap: int | None = None) -> dict:
    """Write `ds` (the whole split as served) as the mirror's copy of (hub_id, config, split, revision) and record it
    in the manifest; with `seed`, only its seeded prefix of `cap` rows is written."""
    path = entry_path(mirror, hub_id, config, split, revision, seed, cap)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = seeded_prefix(ds, seed, cap)
    tmp = path.with_suffix(".parquet.tmp")
    kept.to_parquet(str(tmp))
    tmp.replace(path)
    entry = {"hub_id": hub_id, "config": config, "split": split, "revision": revision, "pinned": pinned(revision),
             "rows": len(kept), "sample": None if seed is None else {"seed": seed, "cap": cap, "of_rows": len(ds)},
             "sha256": _sha256(path), "file": str(path.relative_to(mirror)), "format": "parquet",
             "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return _record(mirror, entry)


def _record(mirror: str | Path, entry: dict) -> dict:
    """Add (or replace) the manifest's entry for `entry["file"]`."""
    with FileLock(str(Path(mirror) / (MANIFEST + ".lock"))):
        manifest = [e for e in read_manifest(mirror) if e["file"] != entry["file"]] + [entry]
        (Path(mirror) / MANIFEST).write_text(json.dumps(sorted(manifest, key=lambda e: e["file"]), indent=1))
    return entry


# ------------------------------------------------------------------------------------------------- models
def model_path(mirror: str | Path, hub_id: str, revision: str | None) -> Path:
    return Path(mirror) / "models" / f"{hub_id}@{revision_label(revision)}"


def mirrored_model(mirror: str | Path, hub_id: str, revision: str | None) -> Path | None:
    """The mirror's copy of a model (a directory from_pretrained reads), or None when the mirror has none."""
    path = model_path(mirror, hub_id, revision)
    return path if (path / "config.json").exists() else None


def add_model(mirror: str | Path, hub_id: str, revision: str | None,
              download: Callable[[str, str | None, Path], str]) -> dict:
    """Fill the mirror's copy of a model with `download(hub_id, revision, into)`, which returns the commit it read, and
    record it in the manifest. The copy appears whole or not at all (written beside it, then renamed)."""
    import shutil

    path = model_path(mirror, hub_id, revision)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    commit = download(hub_id, revision, partial)
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # the hub client's download bookkeeping
    files = sorted(p for p in partial.rglob("*") if p.is_file())
    if not any(p.name == "config.json" for p in files):
        raise MirrorMissing(f"model {hub_id} at {revision_label(revision)} has no config.json: not a transformers model")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(partial)}\0{_sha256(f)}\0".encode())
    entry = {"kind": "model", "hub_id": hub_id, "revision": revision, "pinned": pinned(revision), "commit": commit,
             "files": [str(f.relative_to(partial)) for f in files], "bytes": sum(f.stat().st_size for f in files),
             "sha256": h.hexdigest(), "file": str(path.relative_to(mirror)), "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    shutil.rmtree(path, ignore_errors=True)
    partial.replace(path)
    return _record(mirror, entry)


def load_hub(hub_id: str, config: str | None, split: str, revision: str | None, mirror: str | None,
             prefetch_hint: str = "python -m harness.data prefetch ...", data_files: str | None = None,
             seed: int | None = None, cap: int | None = None) -> Dataset:
    """A hub split (its seeded prefix when `seed` is set), from the mirror when one is set (never the network then),
    else from the hub, reading only that split's files."""
    what = f"{hub_id} (config {config or 'default'}, split {split}, revision {revision_label(revision)})"
    if mirror:
        path = entry_path(mirror, hub_id, config, split, revision, seed, cap)
        if not path.exists():
            raise MirrorMissing(f"{what} is not in the offline mirror {mirror} (expected {path}); on a machine with "
                                f"network access run `{prefetch_hint} paths.mirror={mirror}`")
        from datasets import load_dataset

        return load_dataset("parquet", data_files=str(path), split="train")
    from harness.data.hub import read_split

    try:
        if not offline():
            why = hub_unreachable(data_files)
            if why:  # fail now, not after the hub client's minute of retries
                raise ConnectionError(f"the hub is unreachable: {why}")
        return seeded_prefix(read_split(hub_id, config, split, revision, data_files), seed, cap)
    except Exception as e:
        if not offline() and not no_connection(e):
            raise
        # Offline and not in the HF cache: say how to get it instead of the hub client's connection error.
        raise MirrorMissing(
            f"{what} is needed but the hub cannot be reached (offline: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, or no network: "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}) and no mirror is "
            f"set; on a machine with network access run `{prefetch_hint} paths.mirror=<dir>`, then run with "
            "paths.mirror=<dir> (or HARNESS_MIRROR=<dir>); HF_HUB_OFFLINE=1 skips the network at once"
        ) from e


def entry_sha256(mirror: str | Path, hub_id: str, config: str | None, split: str, revision: str | None,
                 seed: int | None = None, cap: int | None = None) -> str | None:
    """Checksum the manifest records for an entry (None if absent): part of a cached dataset's identity."""
    file = str(entry_path(mirror, hub_id, config, split, revision, seed, cap).relative_to(mirror))
    return next((e["sha256"] for e in read_manifest(mirror) if e["file"] == file), None)


def source_sha256(mirror: str | Path, source: HubSplit) -> str | None:
    return entry_sha256(mirror, source.hub_id, source.config, source.split, source.revision, source.seed, source.cap)
