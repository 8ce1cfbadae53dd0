"""The paper's recipe for a cell, and how a run's configuration differs from it.

The recipe of a cell term is what the default composition of its axes gives: `python -m harness <axis>=<value> ...
eval=<suite> scale=<scale>` plus the few options the paper's grid sets beyond its axes (Table 2's PPO:
`algorithm.table2=true`, harness.report.grid.Term.overrides), reduced to the configuration that determines the numbers
(harness.records.identity.determining_config). The sweeps of the paper's tables (sweeps/) compose the same way, so
their runs are the recipe. A run fills the cell only when its own determining configuration equals the recipe's in
every field except the seeds (SEEDS); a run of the cell's axes that differs elsewhere is a variant, listed with the
fields it changes (`algorithm.beta=0.5`), never averaged in.

Composing the recipe (and not, say, taking the most common configuration among the runs) means a lone variant never
passes for the paper's recipe, and a cell says missing until the recipe itself has run.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache

from harness.config.groups import options
from harness.records.tracking import flatten

log = logging.getLogger(__name__)

# Fields in which runs of one recipe may differ: the seeds (a cell's runs are the recipe's seeds: the run's seed and
# the evaluation's sampling seed that may follow it, eval.seed=${seed}) and how evaluation is executed (the engine,
# its GPUs and layer placement: the same model and requests, as the paper's vLLM evaluation on whatever hardware).
SEEDS = ("seed", "eval.seed")
EXECUTION = ("eval.backend", "eval.tensor_parallel_size", "eval.placement")
EXEMPT = (*SEEDS, *EXECUTION)
ABSENT = "<absent>"
SUITE_AXIS = "eval_suite"


def exempt(key: str) -> bool:
    return any(key == e or key.startswith(e + ".") for e in EXEMPT)


def render(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def flat(config: dict) -> dict[str, str]:
    """Dotted key -> value as text (lists and scalars as JSON, strings as they are)."""
    return {k: render(v) for k, v in flatten(config).items()}


def changes(config: dict, recipe: dict, skip=exempt) -> list[str]:
    """`key=value` for every field in which `config` differs from `recipe` (ABSENT: a field one of them lacks)."""
    a, b = flat(config), flat(recipe)
    return [f"{k}={a.get(k, ABSENT)}" for k in sorted(set(a) | set(b)) if not skip(k) and a.get(k) != b.get(k)]


def overrides(select: dict[str, str], extra: tuple[str, ...], scale: str) -> tuple[str, ...]:
    """The command line composing a term's recipe: its axes (those with an entry: "none" of an unread axis is left
    to the default), the suite, the scale and the grid's own options."""
    out = [f"scale={scale}"]
    for axis, value in sorted(select.items()):
        if axis == SUITE_AXIS:
            out.append(f"eval={value}")
        elif value in options(axis):
            out.append(f"{axis}={value}")
    return (*out, *extra)


@lru_cache(maxsize=None)
def recipe(command: tuple[str, ...]) -> dict | None:
    """The determining configuration the overrides compose to; None when they do not compose (logged)."""
    from harness.config.compose import compose
    from harness.records.identity import determining_config

    try:
        return determining_config(compose(list(command)))
    except Exception as exc:  # a grid point this checkout cannot compose: its runs are kept by their axes alone
        log.warning("the recipe %s does not compose (%s): its runs are not checked against it", " ".join(command), exc)
        return None
