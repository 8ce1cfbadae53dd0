"""Hydra composition, cached by content: the same overrides over the same config files, schema and Hydra version give
the same config, so planning a sweep composes each run once per change of conf/, not once per invocation.

A compose costs ~0.3 s of CPU (OmegaConf merges ~1,100 nodes, two thirds of them the eval suite's), so `plan all`
(42 runs) spent 12 s composing. The cache key covers every input of a compose: the bytes of each file Hydra can read
under conf/ (symlinked groups followed: conf/sweep is ../sweeps), the ConfigStore's schemas (as YAML), the overrides,
the Hydra and OmegaConf versions, and for a config that includes the `hydra` node the working directory (Hydra records
it there). A config is stored pickled, as composed: typed by the schema, its interpolations (`${harness_home:}`,
`${oc.env:...}`) unresolved, so they resolve where it is used; reading it back costs ~2 ms.

Pickle, because nothing else gives back the structured config exactly (its schema types, flags and unresolved
interpolations) without composing again; and pickle runs code when it loads, so a cache file is loaded only when no
one else could have written it: the cache directory and the file are the user's own (owner = this user, not writable
by group or others; checked on the opened directory, so it cannot be swapped between check and read). Anything else
(a shared or world-writable directory, another owner) warns once and is not used: configs are composed each time.
Every file carries the sha256 of its content, checked before unpickling: a torn or flipped file is composed again,
never loaded as a different config.

The cache lives in $XDG_CACHE_HOME/harness/compose (default ~/.cache); HARNESS_COMPOSE_CACHE=<dir> moves it, =0 turns
it off.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import stat
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
log = logging.getLogger(__name__)


def cache_dir() -> Path | None:
    where = os.environ.get("HARNESS_COMPOSE_CACHE", "")
    if where == "0":
        return None
    return Path(where or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness" / "compose")


def compose(overrides: list[str], hydra: bool = False, conf_dir: Path = CONF_DIR) -> DictConfig:
    """`compose("config", overrides)` as the run would see it (with Hydra's own node when `hydra`), from the cache
    when this exact compose was done before."""
    path = _cached_path(list(overrides), hydra, conf_dir)
    cached = _read(path) if path is not None else None
    if cached is not None:
        return cached
    cfg = _compose(list(overrides), hydra, conf_dir)
    if path is not None and not (hydra and cfg.hydra.job.env_copy):  # env_copy copies os.environ into the config
        _write(path, cfg)
    return cfg


# A cache file: this header, the sha256 of the pickle (hex), a newline, the pickle.
MAGIC = b"harness-compose-cache 2\n"


def _read(path: Path) -> DictConfig | None:
    """The config cached at `path`, or None when there is none, it is not the user's own, or it does not load
    exactly (torn, flipped, or pickled from a schema class since renamed)."""
    directory = _own_directory(path.parent)
    if directory is None:
        return None
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    with os.fdopen(fd, "rb") as f:
        if not _own(os.fstat(f.fileno())):
            _warn(path.parent, f"{path.name} is not the user's own file")
            return None
        data = f.read()
    head, digest, payload = data[:len(MAGIC)], data[len(MAGIC):len(MAGIC) + 64], data[len(MAGIC) + 65:]
    if head != MAGIC or digest != hashlib.sha256(payload).hexdigest().encode() or data[len(MAGIC) + 64:][:1] != b"\n":
        return None
    try:
        cfg = pickle.loads(payload)
    except Exception:  # noqa: BLE001  (whole, yet unloadable: a schema class renamed or moved)
        return None
    return cfg if isinstance(cfg, DictConfig) else None


def _own(st: os.stat_result) -> bool:
    """Written by this user alone: owned by them, not writable by group or others."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _own_directory(directory: Path, create: bool = False) -> int | None:
    """An open descriptor of the cache directory when it is the user's own (made so when `create`), else None (with
    one warning when it exists but is not)."""
    try:
        if create:
            directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        if create:
            _warn(directory, f"it cannot be written ({e})")
        return None
    st = os.fstat(fd)
    if not _own(st):
        os.close(fd)
        _warn(directory, f"it is not a directory of the user's own (owner uid {st.st_uid}, mode "
                         f"{stat.filemode(st.st_mode)}): a file someone else put there would run code when loaded")
        return None
    return fd


def _write(path: Path, cfg: DictConfig) -> None:
    """Store a composed config; a cache that cannot be written is only slower, so it warns (once) and goes on."""
    directory = _own_directory(path.parent, create=True)
    if directory is None:
        return
    payload = pickle.dumps(cfg)
    tmp = f"{path.stem}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError as e:
        _warn(path.parent, f"it cannot be written ({e})")
    finally:
        os.close(directory)


def _warn(directory: Path, why: str) -> None:
    if directory not in _unusable:
        _unusable.add(directory)
        log.warning(f"the compose cache {directory} is not used: {why}; configs are composed each time. Set "
                    "HARNESS_COMPOSE_CACHE=<a directory of your own>, or =0 to turn the cache off")


_unusable: set[Path] = set()


def warm(jobs: list[list[str]], workers: int | None = None) -> int:
    """Compose the jobs the cache lacks in parallel processes, before a loop reads them one by one (a cold plan on a
    login node's many cores); returns how many were composed. A no-op with one core or nothing missing."""
    missing = [list(j) for j in jobs if (p := _cached_path(list(j), False, CONF_DIR)) is not None and not p.exists()]
    if missing:  # a cache that cannot be used would keep nothing the workers compose
        directory = _own_directory(cache_dir(), create=True)
        if directory is None:
            return 0
        os.close(directory)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)  # macOS
    workers = min(len(missing), workers or cores)
    if workers < 2:
        return 0
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no lock or thread of the caller is inherited
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_store, missing, chunksize=max(1, len(missing) // (4 * workers))))
    return len(missing)


def _store(overrides: list[str]) -> None:
    compose(overrides)


def _compose(overrides: list[str], hydra: bool, conf_dir: Path) -> DictConfig:
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    _register()
    if GlobalHydra.instance().is_initialized():  # inside `python -m harness`: its own search path
        return hydra_compose("config", overrides=overrides, return_hydra_config=hydra)
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=hydra)


def _register() -> None:
    """Everything a compose finds in the ConfigStore, so that its digest is the same before and after a compose."""
    from hydra.core.plugins import Plugins

    import harness.config.schema  # noqa: F401  (registers the run schemas)
    import harness.sweep.config  # noqa: F401  (registers the sweeper and launcher configs)

    Plugins.instance()  # discovers Hydra's plugins, which store their configs (hydra/launcher/basic ...)


def _cached_path(overrides: list[str], hydra: bool, conf_dir: Path) -> Path | None:
    from hydra.core.global_hydra import GlobalHydra

    root = cache_dir()
    if root is None or GlobalHydra.instance().is_initialized():  # another app's search path: not keyed here
        return None
    key = {"overrides": overrides, "hydra": hydra, "cwd": os.getcwd() if hydra else None,
           "conf": _tree_digest(conf_dir), "store": _store_digest()}
    return root / (hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32] + ".pkl")


def config_files(conf_dir: Path) -> list[Path]:
    """Every file Hydra can read under conf/, through symlinked directories too (conf/sweep -> ../sweeps), which
    Python 3.11's rglob does not enter; a link back up is entered once."""
    files, seen = [], set()
    for top, dirs, names in os.walk(conf_dir, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        files += [Path(top) / n for n in sorted(names) if (Path(top) / n).is_file()]
    return files


def _tree_digest(conf_dir: Path) -> str:
    """The bytes of every file Hydra can read under conf/, read again only when a file's size or mtime changed."""
    files = config_files(conf_dir)
    stats = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    if stats not in _tree_digests:
        h = hashlib.sha256()
        for p in files:
            h.update(str(p.relative_to(conf_dir)).encode() + b"\0" + p.read_bytes() + b"\0")
        _tree_digests[stats] = h.hexdigest()
    return _tree_digests[stats]


_tree_digests: dict[tuple, str] = {}


# Store fingerprint (names and node ids) -> (digest, the nodes: held so that their ids are not reused).
_store_digests: dict[tuple, tuple[str, list]] = {}


def _store_digest() -> str:
    """The registered schemas and Hydra's own configs, with the library versions that compose them. Hashing them as
    YAML costs ~10 ms, so it is done again only when a node is stored or replaced."""
    import hydra
    import omegaconf
    from hydra.core.config_store import ConfigStore

    _register()
    items = []

    def walk(prefix: str, node) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                walk(f"{prefix}/{name}", node[name])
            else:
                items.append((f"{prefix}/{name}|{node[name].package}", node[name].node))

    walk("", ConfigStore.instance().repo)
    fingerprint = tuple((name, id(node)) for name, node in items)
    if fingerprint not in _store_digests:
        h = hashlib.sha256(f"hydra {hydra.__version__} omegaconf {omegaconf.__version__}".encode())
        for name, node in items:
            h.update(name.encode() + b"\n" + OmegaConf.to_yaml(node).encode())
        _store_digests[fingerprint] = (h.hexdigest(), [node for _, node in items])
    return _store_digests[fingerprint][0]
