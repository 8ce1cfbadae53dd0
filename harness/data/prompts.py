"""Policy prompts for PPO / GRPO (Table 4, Figure 3): one user turn (or a conversation prefix) per row.

Normalised row: `prompt` (list of {role, content} ending with a user turn), `id`, `source`.
"""

from __future__ import annotations

import hashlib
import json

from datasets import Dataset, load_dataset

from harness.data.mirror import load_hub
from harness.data.preferences import asset_path


def _prompt_messages(row: dict) -> list[dict]:
    for key in ("messages", "prompt"):
        value = row.get(key)
        if isinstance(value, list):
            msgs = [{"role": m["role"], "content": m["content"]} for m in value]
            return msgs[:-1] if msgs and msgs[-1]["role"] == "assistant" else msgs
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
    raise ValueError(f"prompt row has neither `messages` nor `prompt`: columns {sorted(row)}")


def load_prompts(cfg, mirror: str | None = None) -> Dataset:
    if cfg.source == "files":
        raw = load_dataset("json", data_files=str(asset_path(cfg.files[cfg.train_split])), split="train")
    elif cfg.source == "tulu25":
        raw = load_hub(cfg.hub_id, None, cfg.split, cfg.revision, mirror, f"python -m harness.data prefetch prompts={cfg.name}")
    else:
        raise ValueError(f"prompts {cfg.name!r}: unknown source {cfg.source!r}; valid: files, tulu25")
    rows = []
    for r in raw:
        msgs = _prompt_messages(r)
        rows.append({"prompt": msgs, "source": r.get("source") or cfg.name,
                     "id": r.get("id") or hashlib.sha1(json.dumps(msgs).encode()).hexdigest()[:16]})
    ds = Dataset.from_list(rows)
    if cfg.max_samples and len(ds) > cfg.max_samples:
        ds = ds.shuffle(seed=cfg.seed).select(range(cfg.max_samples))
    return ds
