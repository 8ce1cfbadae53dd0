"""The entries of each config group (the YAML files under conf/<group>/), listed or composed one at a time."""

from __future__ import annotations

import copy
import functools

from harness.config.compose import CONF_DIR, compose
from harness.config.errors import ConfigError


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
    if name not in options(group):
        raise ConfigError(f"{group}={name!r} is not an entry of conf/{group}/; valid: {options(group)}")
    return compose([f"{group}={name}", f"scale={scale}"])[group]
