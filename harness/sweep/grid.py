"""A sweep's grid: the union of cartesian grids, expanded to one override list per job.

A paper table is rarely one cartesian product (Table 5 mixes evaluated models, one DPO run and three PPO runs), so a
sweep file may give several named grids under `hydra.sweeper.grids`; `hydra.sweeper.params` holds what every grid
shares. A grid's value wins over `params`, and the command line wins over both. Identical jobs are listed once.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return "null" if v is None else str(v)


def expand(params: Mapping[str, Any] | None, grids: Mapping[str, Mapping[str, Any]] | None, arguments: Sequence[str],
           parser) -> list[list[str]]:
    """Job override lists. `parser` is Hydra's OverridesParser (it knows sweep syntax: a,b / glob / range)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    jobs: list[list[str]] = []
    for grid in (grids or {"": {}}).values():
        merged = {**(params or {}), **(grid or {})}
        overrides = parser.parse_overrides([f"{k}={_value(v)}" for k, v in merged.items()] + list(arguments))
        for job in BasicSweeper.split_arguments(overrides, None)[0]:
            if job not in jobs:
                jobs.append(job)
    return jobs
