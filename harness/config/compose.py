"""Hydra composition, cached by content: the same overrides over the same config files, schema and Hydra version give
the same config, so planning a sweep composes each run once per change of conf/, not once per invocation.

A compose costs ~0.3 s of CPU (OmegaConf merges ~1,100 nodes, two thirds of them the eval suite's), so `plan all`
(42 runs) spent 12 s composing. The cache key covers every input of a compose: the bytes of each file under conf/,
the ConfigStore's schemas (as YAML), the overrides, the Hydra and OmegaConf versions, and for a config that includes
the `hydra` node the working directory (Hydra records it there). A config is stored pickled, as composed: typed by
the schema, its interpolations (`${harness_home:}`, `${oc.env:...}`) unresolved, so they resolve where it is used;
reading it back costs ~2 ms. The cache is the user's own (like ~/.cache/torch); a file that does not load is composed
again.

The cache lives in $XDG_CACHE_HOME/harness/compose (default ~/.cache); HARNESS_COMPOSE_CACHE=<dir> moves it, =0 turns
it off.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
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
    if path is not None and path.exists():
        try:
            return pickle.loads(path.read_bytes())
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):  # torn, or a schema class renamed
            pass
    cfg = _compose(list(overrides), hydra, conf_dir)
    if path is not None and not (hydra and cfg.hydra.job.env_copy):  # env_copy copies os.environ into the config
        _write(path, cfg)
    return cfg


def _write(path: Path, cfg: DictConfig) -> None:
    """Store a composed config; a cache that cannot be written is only slower, so it warns (once) and goes on."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(cfg))
        tmp.replace(path)
    except OSError as e:
        if path.parent not in _unwritable:
            _unwritable.add(path.parent)
            log.warning(f"the compose cache {path.parent} cannot be written ({e}); configs are composed each time. "
                        "Set HARNESS_COMPOSE_CACHE=<writable dir>, or =0 to turn the cache off")


_unwritable: set[Path] = set()


def warm(jobs: list[list[str]], workers: int | None = None) -> int:
    """Compose the jobs the cache lacks in parallel processes, before a loop reads them one by one (a cold plan on a
    login node's many cores); returns how many were composed. A no-op with one core or nothing missing."""
    missing = [list(j) for j in jobs if (p := _cached_path(list(j), False, CONF_DIR)) is not None and not p.exists()]
    try:  # an unwritable cache would keep nothing the workers compose
        if missing:
            cache_dir().mkdir(parents=True, exist_ok=True)
    except OSError:
        return 0
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


def _tree_digest(conf_dir: Path) -> str:
    """The bytes of every file under conf/, read again only when a file's size or mtime changed."""
    files = sorted(p for p in conf_dir.rglob("*") if p.is_file())
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
