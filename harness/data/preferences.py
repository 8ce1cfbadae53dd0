"""Load a preference dataset into the one schema training uses.

    python -m harness.data describe dataset=hh_rlhf                          # the released split
    python -m harness.data describe dataset=hh_rlhf dataset.source=upstream  # re-derived from Anthropic/hh-rlhf

Normalised row: `prompt`, `chosen`, `rejected` (lists of {role, content}; both completions end with an assistant turn
and follow the same prompt), `source`, and a stable `id` (hash of the content unless the row has one).
Sources (`dataset.source`):
    tulu25    the released, converted split of allenai/tulu-2.5-preference-data (what the paper trained on)
    upstream  re-derived from the original hub dataset by a converter (harness.data.converters)
    files     local JSON lines in the tulu-2.5 schema
    mixture   the weighted list `dataset.mixture` of other dataset entries (harness.data.mixture)
All of them go through the same normalisation and validation (harness.data.validate), then the seeded `max_samples`
subsample. Given a stages directory, the result is cached by identity (harness.data.cache).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from datasets import Dataset, Features, List, Value, load_dataset
from omegaconf import OmegaConf

from harness.data import converters, mixture
from harness.data.assets import ASSETS, asset_path, existing_file, identity  # noqa: F401  (callers say preferences.identity ...)
from harness.data.cache import cached
from harness.data.hub import pinned
from harness.data.mirror import HubSplit, source_sha256
from harness.data.validate import (DataError, DataReport, Prepared, chars, content_id, messages_or_none,
                                   pair_problem, token_lengths)

SOURCES = ("tulu25", "upstream", "files", "mixture")
REQUIRED_COLUMNS = ("chosen", "rejected")
MESSAGES = List({"role": Value("string"), "content": Value("string")})
FEATURES = Features({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES, "source": Value("string"),
                     "id": Value("string")})


def json_problem(path: Path) -> str | None:
    """What makes a JSON-lines file unreadable (empty, not UTF-8, a line that is not a JSON object), with its line."""
    if path.stat().st_size == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        array = f.read(1 << 16).lstrip().startswith(b"[")
    if array:  # a whole-file JSON array of objects is read as such; JSON lines whose first line is a list are not
        try:
            rows = json.loads(path.read_bytes().decode("utf-8"))
        except ValueError:
            rows = None  # not one JSON document: JSON lines, checked line by line
        if isinstance(rows, list):
            bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
            return None if bad is None else f"item {bad + 1} of its JSON array is a JSON {type(rows[bad]).__name__}, not an object"
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number}: not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as exc:
                return f"line {number}: not a JSON object ({exc})"
            if not isinstance(row, dict):
                return f"line {number}: a JSON {type(row).__name__}, not an object"
    return None


def load_json_file(path: str, what: str) -> Dataset:
    """A local JSON-lines data file; a file that cannot be read is a DataError naming it, the line and the cause."""
    full = existing_file(path, what)
    # checked first (one pass; the prepared rows are cached): the json builder's own errors name neither the file
    # nor the line, and it stores invalid UTF-8 that fails only when a row is read
    problem = json_problem(full)
    if problem:
        raise DataError(f"{what}: cannot read {full}: {problem}")
    try:
        return load_dataset("json", data_files=str(full), split="train")
    except Exception as exc:  # noqa: BLE001  (whatever else the builder refuses, with the file named)
        raise DataError(f"{what}: cannot read {full}: {type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------------------------------------ normalisation
def _side(value) -> list[dict] | None:
    if isinstance(value, str):  # a bare completion
        return [{"role": "assistant", "content": value}]
    return messages_or_none(value)


def normalize(row: dict, default_source: str, drop_identical: bool = True) -> tuple[dict | None, str | None]:
    """(normalised row, None) or (None, reason it is bad). Rows holding two whole conversations (tulu-2.5) are split
    at the longest run of turns they share; an explicit `prompt` message list is taken as is."""
    chosen, rejected = _side(row.get("chosen")), _side(row.get("rejected"))
    explicit = row.get("prompt")
    prompt = messages_or_none(explicit) if isinstance(explicit, list) else None
    if chosen is None or rejected is None or (isinstance(explicit, list) and prompt is None):
        return None, "missing_field"
    if prompt is None:
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    reason = pair_problem(prompt, chosen, rejected, drop_identical)
    if reason:
        return None, reason
    source = row.get("source") if isinstance(row.get("source"), str) and row.get("source") else default_source
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "source": source,
            "id": content_id(row, prompt, chosen, rejected)}, None


def normalize_pair(row: dict, source: str) -> dict:
    out, reason = normalize(row, source)
    if out is None:
        raise ValueError(f"invalid preference pair ({reason}): {row}")
    return out


# ------------------------------------------------------------------------------------------------ sources
def prefetch_hint(cfg) -> str:
    source = "" if cfg.source == "tulu25" else f" dataset.source={cfg.source}"
    return f"python -m harness.data prefetch dataset={cfg.name}{source}"


def released_split(cfg) -> HubSplit:
    """The released split (source tulu25), read from its own file only (`data_files`)."""
    return HubSplit(cfg.hub_id, None, cfg.split, cfg.revision, cfg.data_files)


def upstream_split(cfg) -> HubSplit:
    """The upstream set, as the conversion script read it: the first `upstream_max_rows` rows of its seeded shuffle."""
    if not cfg.upstream_hub_id or not cfg.converter:
        raise DataError(f"dataset {cfg.name!r} has no upstream source (upstream_hub_id / converter unset); "
                        f"valid sources for it: tulu25" + (", mixture" if cfg.mixture else ""))
    return HubSplit(cfg.upstream_hub_id, cfg.upstream_config, cfg.upstream_split or "train", cfg.upstream_revision,
                    cfg.upstream_data_files, cfg.seed, cfg.upstream_max_rows)


def hub_sources(cfg) -> list[HubSplit]:
    """Every hub split loading `cfg` reads: what prefetch mirrors and what a cache key checksums."""
    if cfg.source == "tulu25":
        return [released_split(cfg)]
    if cfg.source == "upstream" and not cfg.mixture:
        options = OmegaConf.to_container(cfg.converter_options, resolve=True)
        return [upstream_split(cfg), *converters.get(cfg.converter).extras(options)]
    if cfg.source in ("mixture", "upstream"):
        return [s for component in mixture.components(cfg) for s in hub_sources(component)]
    return []


def _check_columns(raw: Dataset, expected, cfg, where: str) -> None:
    missing = [c for c in expected if c not in raw.column_names]
    if missing:
        raise DataError(f"dataset {cfg.name!r} ({where}): missing column(s) {missing}; expected {list(expected)}, "
                        f"found {raw.column_names}")


def _rows(cfg, split: str, mirror: str | None, report: DataReport):
    """Raw rows in the tulu-2.5 layout, from whichever source the config names."""
    if cfg.source == "files":
        if not cfg.files or split not in cfg.files:
            raise DataError(f"dataset {cfg.name!r} has no file for split {split!r}; files: {dict(cfg.files or {})}")
        raw = load_json_file(cfg.files[split], f"dataset {cfg.name!r} split {split}")
        _check_columns(raw, REQUIRED_COLUMNS, cfg, f"file {cfg.files[split]}")
        return iter(raw)
    if split != cfg.train_split:
        raise DataError(f"dataset {cfg.name!r} (source {cfg.source}) has only its training split "
                        f"{cfg.train_split!r}, not {split!r}")
    if cfg.source == "tulu25":
        raw = released_split(cfg).load(mirror, prefetch_hint(cfg))
        _check_columns(raw, REQUIRED_COLUMNS, cfg, f"{cfg.hub_id} split {cfg.split}")
        return iter(raw)
    return _converted(cfg, mirror, report)


def _converted(cfg, mirror: str | None, report: DataReport):
    conv = converters.get(cfg.converter)
    source = upstream_split(cfg)
    # Already the paper script's order: shuffled with the seed (42), then the first upstream_max_rows (500k).
    raw = source.load(mirror, prefetch_hint(cfg))
    _check_columns(raw, conv.columns, cfg, f"upstream {source.hub_id} split {source.split}")
    ctx = converters.Context(random.Random(cfg.seed), OmegaConf.to_container(cfg.converter_options, resolve=True),
                             lambda extra: extra.load(mirror, prefetch_hint(cfg)))
    for i, item in enumerate(conv.convert(iter(raw), ctx)):
        if not isinstance(item, converters.Skip):
            yield item
        elif item.bad:
            report.drop(item.reason, f"upstream item {i}", item.detail)
        else:
            report.skip(item.reason)


# ------------------------------------------------------------------------------------------------ loading
def subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of n rows (Table 2 and the Mix use 60,908-row subsets); all rows when n is None."""
    if n is None or len(ds) <= n:
        return ds
    return ds.shuffle(seed=seed).select(range(n)).flatten_indices()


def limited(ds: Dataset, report: DataReport, n: int | None, seed: int) -> Prepared:
    """`max_samples` applied, and recorded in the report."""
    if n is not None and n < 1:
        raise DataError(f"dataset {report.name!r}: max_samples={n} selects no rows; set a positive number of rows, or "
                        "null for all of them")
    if n is not None and len(ds) > n:
        report.subsampled_from = len(ds)
        ds = subsample(ds, n, seed)
    report.rows = len(ds)
    return Prepared(ds, report)


def _build(cfg, split: str, mirror: str | None) -> Prepared:
    report = DataReport(cfg.name)
    rows = []
    for i, row in enumerate(_rows(cfg, split, mirror, report)):
        out, reason = normalize(row, cfg.name, cfg.drop_identical_pairs)
        if out is None:
            report.drop(reason, i, row)
        else:
            rows.append(out)
    report.rows = len(rows)
    report.check(cfg.max_bad_fraction)
    if not rows:
        raise DataError(f"dataset {cfg.name!r} (source {cfg.source}, split {split}) yielded no rows")
    return limited(Dataset.from_list(rows, features=FEATURES), report, cfg.max_samples, cfg.seed)


def cache_spec(cfg, split: str, mirror: str | None) -> dict | None:
    """The cache key's content; None (do not cache) when a hub split is read at an unpinned revision (null, a branch,
    `to-verify`) and not from a mirror, since `main` can move under the same config. A mirror's copy is keyed by its
    checksum, so it is cached whatever its revision."""
    sums = {}
    for s in hub_sources(cfg):
        if mirror:
            sums["/".join(map(str, s[:4] + s[5:]))] = source_sha256(mirror, s)
        elif not pinned(s.revision):
            return None
    return {"dataset": identity(cfg), "split": split, "mirror_sha256": sums}


def prepare_preferences(cfg, split: str | None = None, mirror: str | None = None, cache: str | None = None) -> Prepared:
    """Rows and report for a dataset config (and split); cached under `cache` (a stages directory) when given."""
    split = split or cfg.train_split
    if cfg.source not in SOURCES:
        raise DataError(f"dataset {cfg.name!r}: unknown source {cfg.source!r}; valid: {list(SOURCES)}")
    if cfg.source == "mixture" or (cfg.source == "upstream" and cfg.mixture):
        build = lambda: mixture.prepare(cfg, split, mirror, cache, prepare_preferences)  # noqa: E731
    else:
        build = lambda: _build(cfg, split, mirror)  # noqa: E731
    return cached(cache_spec(cfg, split, mirror), cache, build, f"{cfg.name}/{split}")


def load_preferences(cfg, split: str | None = None, mirror: str | None = None, cache: str | None = None) -> Dataset:
    return prepare_preferences(cfg, split, mirror, cache).dataset


# ------------------------------------------------------------------------------------------------ tokenizer-dependent
def pair_token_lengths(ds: Dataset, tokenizer, batch_size: int = 512,
                       max_length: int | None = None) -> tuple[list, list, list]:
    """Tokens of (prompt, prompt + chosen, prompt + rejected) per pair, rendered as the trainer renders them; with
    `max_length`, None for a conversation too long by its characters alone to be tokenised (validate.token_lengths)."""
    prompt, chosen, rejected = [], [], []
    for start in range(0, len(ds), batch_size):
        batch = ds[start:start + batch_size]
        prompt += token_lengths(tokenizer, batch["prompt"], add_generation_prompt=True, max_tokens=max_length)
        chosen += token_lengths(tokenizer, [p + c for p, c in zip(batch["prompt"], batch["chosen"])], max_tokens=max_length)
        rejected += token_lengths(tokenizer, [p + r for p, r in zip(batch["prompt"], batch["rejected"])],
                                  max_tokens=max_length)
    return prompt, chosen, rejected


def drop_overlength(prepared: Prepared, tokenizer, max_length: int, max_bad_fraction: float,
                    tokenizer_id: dict | None = None, cache: str | None = None) -> Prepared:
    """Drop pairs whose prompt + chosen or prompt + rejected exceeds `max_length` tokens, counting them as
    `over_length` in the report (cached on the rows' key, the tokenizer and the length). A pair too long by its
    characters alone is dropped without tokenising it (one 30 MB row cost 5 GB of memory)."""

    def build() -> Prepared:
        report = DataReport(**prepared.report.to_dict())
        ds = prepared.dataset
        _, chosen, rejected = pair_token_lengths(ds, tokenizer, max_length=max_length)
        keep = []
        for i, (c, r) in enumerate(zip(chosen, rejected)):
            if c is None or r is None:
                row = ds[i]
                size = chars(row["prompt"]) + max(chars(row["chosen"]), chars(row["rejected"]))
                report.drop("over_length", i, {"id": row["id"], "chars": size, "max_length": max_length})
            elif max(c, r) > max_length:
                report.drop("over_length", i, {"id": ds[i]["id"], "tokens": max(c, r), "max_length": max_length})
            else:
                keep.append(i)
        report.rows = len(keep)
        report.check(max_bad_fraction)
        return Prepared(ds.select(keep).flatten_indices(), report)

    spec = None if prepared.key is None or tokenizer_id is None else {
        "of": prepared.key, "tokenizer": tokenizer_id, "max_length": max_length}
    return cached(spec, cache, build, f"{prepared.report.name} max_length={max_length}")
