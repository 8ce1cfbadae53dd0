"""What every converter shares: the output row shape, rule skips, and the context a conversion runs in."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from datasets import Dataset

from harness.data.mirror import HubSplit


@dataclass(frozen=True)
class Skip:
    """An upstream row (or group) the converter leaves out. `bad=False`: by the source's rule (a tie, a prompt with a
    single response); `bad=True`: malformed, counted with the validation drops against `max_bad_fraction`."""

    reason: str
    bad: bool = False
    # What the row was (shown with the first bad rows when loading stops).
    detail: str = ""


@dataclass
class Context:
    # Seeded generator for the converter's random choices (drawn in row order, so a seed fixes the pairs).
    rng: random.Random
    # dataset.converter_options
    options: dict = field(default_factory=dict)
    # Loads another hub split (mirror-aware), for converters that need a second source.
    load: Callable[[HubSplit], Dataset] | None = None


@dataclass(frozen=True)
class Converter:
    convert: Callable[[Iterable[dict], Context], Iterator[dict | Skip]]
    # Upstream columns the converter reads: a source without them is rejected naming expected and found columns.
    columns: tuple[str, ...]
    # Further hub splits it reads (prefetch mirrors them too), from its options.
    extras: Callable[[dict], list[HubSplit]] = lambda options: []


def msg(role: str, content) -> dict:
    """A message with its content stripped (as the paper's conversion did); a missing content stays None so that
    validation counts it as a missing field."""
    return {"role": role, "content": content.strip() if isinstance(content, str) else content}


def single_turn(prompt, completion) -> list[dict]:
    return [msg("user", prompt), msg("assistant", completion)]


def pair(chosen: list[dict], rejected: list[dict]) -> dict:
    """A converted row in the tulu-2.5 layout: two whole conversations sharing their prompt turns."""
    return {"chosen": chosen, "rejected": rejected}


def stripped(messages) -> list[dict] | None:
    """An upstream message list with contents stripped (None stays None: a missing field)."""
    if not isinstance(messages, list):
        return None
    return [msg(m.get("role"), m.get("content")) if isinstance(m, dict) else m for m in messages]
