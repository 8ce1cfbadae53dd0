"""Reading one split of a hub dataset: exactly that split's files, at its configured revision.

`datasets.load_dataset(hub_id, split=...)` downloads and prepares every split of a repo (all 28 of
allenai/tulu-2.5-preference-data, ~3.6 GB, to read one). Here a split is read from its own files only:
    - `data_files` given (a path inside the hub repo, e.g. "data/{split}-00000-of-00001.jsonl", a URL / hf:// path, or
      an absolute local path):
      that file, at the revision;
    - otherwise the files the repo's own layout assigns to the split (its README `configs` or datasets' file-name
      patterns), resolved from the repo listing without downloading anything else.
Then the packaged builder (json, parquet, csv) reads those files and nothing more.

Revisions: a pinned revision is a 40-hex commit. `to-verify` in a config means "not pinned yet": it reads `main` and
`python -m harness.data verify` prints the commit to pin. An unpinned read (null, a branch, `to-verify`) warns once per
source and is never cached as if pinned (harness.data.preferences.cache_spec).
"""

from __future__ import annotations

import re
import warnings

from datasets import Dataset, load_dataset, load_dataset_builder

from harness.data.revisions import PIN_PENDING, hub_revision, pinned, revision_label  # noqa: F401

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_warned: set[tuple] = set()


class UnpinnedRevision(UserWarning):
    """A hub source read at a moving revision (its rows can change under the same config)."""


def warn_unpinned(hub_id: str, split: str, revision: str | None) -> None:
    """Warn once per (hub_id, split, revision) that a read follows a moving revision."""
    if pinned(revision) or (hub_id, split, revision) in _warned:
        return
    _warned.add((hub_id, split, revision))
    warnings.warn(f"{hub_id} split {split} is read at revision {revision_label(revision)!r}, not a pinned commit: its "
                  f"rows can change; the data cache is not used for it. Pin a commit in its config (`python -m "
                  f"harness.data verify` prints the commit `main` resolves to).", UnpinnedRevision, stacklevel=3)


def builder_for(path: str) -> str:
    name = path.removesuffix(".gz").removesuffix(".bz2")
    for ext, builder in BUILDERS.items():
        if name.endswith(ext):
            return builder
    raise ValueError(f"cannot tell the file format of {path!r}; expected one of {sorted(BUILDERS)} (optionally .gz)")


def file_url(hub_id: str, revision: str | None, data_files: str, split: str) -> str:
    """The URL of a configured data file: `{split}` / `{revision}` filled; a path inside the repo becomes hf://, a URL or
    an absolute local path stays as it is."""
    path = data_files.format(split=split, revision=revision_label(revision))
    if "://" in path or path.startswith("/"):
        return path
    rev = hub_revision(revision)
    return f"hf://datasets/{hub_id}{'@' + rev if rev else ''}/{path}"


def split_files(hub_id: str, config: str | None, split: str, revision: str | None,
                data_files: str | None = None) -> tuple[str, list[str]]:
    """(packaged builder, the files of exactly this split)."""
    if data_files:
        url = file_url(hub_id, revision, data_files, split)
        return builder_for(url), [url]
    builder = load_dataset_builder(hub_id, config, revision=hub_revision(revision))
    files = (builder.config.data_files or {}).get(split)
    if not files:
        raise ValueError(f"{hub_id} (config {config or 'default'}, revision {revision_label(revision)}) has no split "
                         f"{split!r}; splits: {sorted(builder.config.data_files or {})}")
    return builder.name, list(files)


def read_split(hub_id: str, config: str | None, split: str, revision: str | None,
               data_files: str | None = None) -> Dataset:
    """One split, reading only its files (a warning once when the revision is not pinned)."""
    warn_unpinned(hub_id, split, revision)
    builder, files = split_files(hub_id, config, split, revision, data_files)
    # The files are keyed "train": any split name (hyphens included) is then a valid key for the builder.
    return load_dataset(builder, data_files={"train": files}, split="train")
