"""The entries of each config group (the YAML files under conf/<group>/), listed or composed one at a time."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from harness.config.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def options(group: str) -> list[str]:
    """Entries of a config group (the YAML files under conf/<group>/)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def entry(group: str, name: str, scale: str = "paper"):
    """One entry of a config group, composed and typed as `<group>=<name>` would be (a reward model names its base
    model and data by entry), at the run's `scale` (tiny: the entry's stand-in, conf/scale/tiny.yaml). Composed once
    per process (a sweep plan asks for the same entries many times)."""
    return copy.deepcopy(_entry(group, name, scale))


@functools.lru_cache(maxsize=None)
def _entry(group: str, name: str, scale: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if name not in options(group):
        raise ConfigError(f"{group}={name!r} is not an entry of conf/{group}/; valid: {options(group)}")
    overrides = [f"{group}={name}", f"scale={scale}"]
    if GlobalHydra.instance().is_initialized():  # inside `python -m harness`
        return compose("config", overrides=overrides)[group]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)[group]
