"""Shared helpers for the data tests: write fixture rows into an offline mirror, as prefetch does after downloading."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from datasets import Dataset

from harness.data.mirror import HubSplit, add_to_mirror
from harness.data.mixture import dataset_config
from harness.data.preferences import released_split

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def mirror_rows(mirror: Path, source: HubSplit, rows: list[dict] | Path) -> HubSplit:
    """Put `rows` (or a JSON-lines file: the whole split as the hub serves it) into `mirror` as the copy of `source`
    (its seeded prefix for an upstream set), as prefetch does."""
    rows = read_jsonl(rows) if isinstance(rows, Path) else rows
    add_to_mirror(mirror, source.hub_id, source.config, source.split, source.revision, Dataset.from_list(rows),
                  source.seed, source.cap)
    return source


def released_source(split: str) -> HubSplit:
    """A released split of allenai/tulu-2.5-preference-data, as a dataset config reads it (pinned, its own file)."""
    return _released_capybara()._replace(split=split)


@functools.lru_cache(maxsize=1)
def _released_capybara() -> HubSplit:
    return released_split(dataset_config("capybara"))


def tulu_pair(prompt: str, chosen: str, rejected: str, source: str = "fixture") -> dict:
    """One row in the released tulu-2.5 layout (whole conversations)."""
    user = {"role": "user", "content": prompt}
    return {"chosen": [user, {"role": "assistant", "content": chosen}],
            "rejected": [user, {"role": "assistant", "content": rejected}], "source": source}


def pairs_only(ds) -> list[dict]:
    """Rows without `id` / `source`, sorted, for comparing with hand-written expectations."""
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in ds]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
