"""Policy prompts for PPO / GRPO (Table 4, Figure 3): one conversation prefix ending with a user turn per row.

    python -m harness.data describe prompts=uf

Normalised row: `prompt` (list of {role, content} ending with a user turn), `id`, `source`.
Sources (`prompts.source`):
    tulu25        a split of allenai/tulu-2.5-prompts (conf/prompts/{uf,gsm8k,math,mixed}.yaml)
    files         local JSON lines (conf/prompts/tiny.yaml)
    from_dataset  the prompts of the run's own preference dataset (Table 2's PPO): pass `dataset_cfg`
Given a tokenizer, prompts longer than `max_prompt_tokens` (1024 in the paper) are dropped and counted.
"""

from __future__ import annotations

import hashlib

from datasets import Dataset, Features, Value, load_dataset
from omegaconf import OmegaConf

from harness.data.cache import cached
from harness.data.hub import pinned
from harness.data.mirror import HubSplit, source_sha256
from harness.data.preferences import (MESSAGES, asset_path, cache_spec, identity, limited, load_json_file,
                                      prepare_preferences)
from harness.data.validate import (DataError, DataReport, Prepared, content_id, messages_or_none, prompt_problem,
                                   token_lengths)

SOURCES = ("tulu25", "files", "from_dataset")
FEATURES = Features({"prompt": MESSAGES, "source": Value("string"), "id": Value("string")})
# Columns a prompt can come from, in the paper's PPO loader's precedence (hamishivi/EasyLM EasyLM/data.py,
# TuluPromptDataset._process_sample: instruction, history_messages, messages, conversation, chosen): the first column
# the dataset HAS is used for every row, as there. The released tulu-2.5-prompts layout is not documented on its card,
# so the column used is printed on load. `prompt` (a message list, or text) is this project's own layout (from_dataset),
# tried last.
PROMPT_COLUMNS = ("instruction", "history_messages", "messages", "conversation", "chosen", "prompt")


def prompt_column(columns) -> str | None:
    """The column prompts are read from: the first of PROMPT_COLUMNS the dataset has."""
    return next((c for c in PROMPT_COLUMNS if c in columns), None)


def prompt_messages(row: dict, column: str | None = None) -> list[dict] | None:
    """The prompt turns of a row from `column` (default: the row's first PROMPT_COLUMNS key); a trailing assistant
    turn (a reference answer; `chosen`'s response, which EasyLM cut with chosen[:-1]) is removed. None if absent."""
    value = row.get(column or prompt_column(row))
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        msgs = messages_or_none(value)
        if msgs and msgs[-1]["role"] == "assistant":
            msgs = msgs[:-1]
        return msgs
    return None


def prefetch_hint(cfg) -> str:
    return f"python -m harness.data prefetch prompts={cfg.name}"


def hub_sources(cfg) -> list[HubSplit]:
    return [HubSplit(cfg.hub_id, None, cfg.split, cfg.revision, cfg.data_files)] if cfg.source == "tulu25" else []


def _raw(cfg, mirror: str | None, dataset_cfg, cache: str | None) -> list[dict]:
    if cfg.source == "files":
        if not cfg.files or cfg.train_split not in cfg.files:
            raise DataError(f"prompts {cfg.name!r} have no file for split {cfg.train_split!r}; files: {dict(cfg.files or {})}")
        raw = load_json_file(cfg.files[cfg.train_split], f"prompts {cfg.name!r}")
    elif cfg.source == "tulu25":
        raw = hub_sources(cfg)[0].load(mirror, prefetch_hint(cfg))
    elif cfg.source == "from_dataset":
        if dataset_cfg is None:
            raise DataError(f"prompts {cfg.name!r} (source from_dataset) need the run's dataset config: "
                            f"load_prompts(cfg.prompts, dataset_cfg=cfg.dataset)")
        pairs = prepare_preferences(dataset_cfg, mirror=mirror, cache=cache).dataset
        return [{"prompt": p, "source": s} for p, s in zip(pairs["prompt"], pairs["source"])]
    else:
        raise DataError(f"prompts {cfg.name!r}: unknown source {cfg.source!r}; valid: {list(SOURCES)}")
    if prompt_column(raw.column_names) is None:
        raise DataError(f"prompts {cfg.name!r}: no prompt column; expected one of {list(PROMPT_COLUMNS)}, "
                        f"found {raw.column_names}")
    return list(raw)


def _build(cfg, mirror: str | None, dataset_cfg, cache: str | None) -> Prepared:
    report = DataReport(cfg.name, kind="prompts")
    rows = []
    raw = _raw(cfg, mirror, dataset_cfg, cache)
    column = prompt_column(raw[0] if raw else {})
    print(f"[harness.data] prompts {cfg.name}: prompt column {column!r} (EasyLM TuluPromptDataset precedence: "
          f"{', '.join(PROMPT_COLUMNS)})")
    for i, row in enumerate(raw):
        msgs = prompt_messages(row, column)
        reason = prompt_problem(msgs)
        if reason:
            report.drop(reason, i, row)
            continue
        source = row.get("source") if isinstance(row.get("source"), str) and row.get("source") else cfg.name
        rows.append({"prompt": msgs, "source": source, "id": content_id(row, msgs)})
    report.rows = len(rows)
    report.check(cfg.max_bad_fraction)
    if not rows:
        raise DataError(f"prompts {cfg.name!r} (source {cfg.source}) yielded no rows")
    return limited(Dataset.from_list(rows, features=FEATURES), report, cfg.max_samples, cfg.seed)


def _spec(cfg, mirror: str | None, dataset_cfg) -> dict | None:
    config = OmegaConf.to_container(cfg, resolve=True)
    ident = {"prompts": {k: v for k, v in config.items() if k not in ("label", "max_bad_fraction", "max_prompt_tokens")}}
    if cfg.source == "files":
        ident["file_sha256"] = hashlib.sha256(asset_path(cfg.files[cfg.train_split]).read_bytes()).hexdigest()
    if cfg.source == "from_dataset":
        inner = cache_spec(dataset_cfg, dataset_cfg.train_split, mirror) if dataset_cfg is not None else None
        return None if inner is None else ident | {"dataset": identity(dataset_cfg), "dataset_cache": inner}
    for s in hub_sources(cfg):
        if mirror:
            ident["mirror_sha256"] = source_sha256(mirror, s)
        elif not pinned(s.revision):
            return None
    return ident


def drop_long_prompts(prepared: Prepared, tokenizer, max_tokens: int, max_bad_fraction: float) -> Prepared:
    """Drop prompts over `max_tokens` tokens (rendered with the generation prompt, as the policy sees them)."""
    report = DataReport(**prepared.report.to_dict())
    # a prompt too long by its characters alone is not tokenised (None): memory follows the prompts kept
    lengths = token_lengths(tokenizer, prepared.dataset["prompt"], add_generation_prompt=True, max_tokens=max_tokens)
    keep = [i for i, n in enumerate(lengths) if n is not None and n <= max_tokens]
    for i in (i for i, n in enumerate(lengths) if n is None or n > max_tokens):
        report.drop("over_length", i, {"id": prepared.dataset[i]["id"], "tokens": lengths[i] or "too many to count",
                                       "max": max_tokens})
    report.rows = len(keep)
    report.check(max_bad_fraction)
    return Prepared(prepared.dataset.select(keep).flatten_indices(), report, prepared.key)


def prepare_prompts(cfg, mirror: str | None = None, dataset_cfg=None, tokenizer=None, cache: str | None = None) -> Prepared:
    """Rows and report for a prompts config; with a tokenizer, the prompt-length filter too."""
    spec = _spec(cfg, mirror, dataset_cfg) if cache else None
    build = lambda: _build(cfg, mirror, dataset_cfg, cache)  # noqa: E731
    prepared = cached(spec and {"kind": "prompts", **spec}, cache, build, f"prompts {cfg.name}")
    if tokenizer is not None:
        prepared = drop_long_prompts(prepared, tokenizer, cfg.max_prompt_tokens, cfg.max_bad_fraction)
    return prepared


def load_prompts(cfg, mirror: str | None = None, dataset_cfg=None, tokenizer=None, cache: str | None = None) -> Dataset:
    return prepare_prompts(cfg, mirror, dataset_cfg, tokenizer, cache).dataset
