"""Where a data config's local files are, and what determines the rows it yields (its identity, part of every
stage key that reads it). Imports no ML library: planning a sweep keys stages with it (harness.planning)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Config keys that do not change the rows a dataset yields.
NOT_IDENTITY = ("label", "paper_rows", "released_rows", "max_bad_fraction")


def asset_path(path: str) -> Path:
    """A data path of a config: absolute; else relative to the working directory when it exists there (the user's
    own file); else under harness/assets/ (the bundled data)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return p.resolve() if p.exists() else ASSETS / p


def existing_file(path: str, what: str) -> Path:
    """`asset_path(path)`, which must be a file: a DataError naming it and where it was looked for otherwise."""
    full = asset_path(path)
    if not full.is_file():
        from harness.data.validate import DataError

        raise DataError(f"{what}: data file {path!r} does not exist (looked at {full}; relative paths are read from "
                        f"the working directory, then from {ASSETS}); set it to an existing JSON-lines file")
    return full


def identity(cfg) -> dict:
    """What determines the rows a dataset config yields: the config, plus the bytes of local files (and, for a
    mixture, its components)."""
    from harness.data import mixture

    ident = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_IDENTITY}
    if cfg.source == "files":
        ident["file_sha256"] = {split: hashlib.sha256(existing_file(p, f"{cfg.name!r} split {split}").read_bytes()).hexdigest()
                                for split, p in (cfg.files or {}).items()}
    if cfg.source == "mixture" or (cfg.source == "upstream" and cfg.mixture):
        ident["components"] = [identity(c) for c in mixture.components(cfg)]
    return ident
