"""Describe a dataset as a run would see it: rows, drops by reason, token lengths with the run's tokenizer.

    python -m harness.data describe dataset=hh_rlhf model=tulu2_13b
    python -m harness.data describe dataset=tiny prompts=tiny
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

from harness.data.preferences import drop_overlength, pair_token_lengths, prepare_preferences
from harness.data.prompts import prepare_prompts
from harness.data.validate import token_lengths


def length_stats(lengths: list[int]) -> dict:
    ordered = sorted(lengths)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"mean": round(statistics.fmean(ordered), 1), "p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1]}


def table(rows: dict[str, dict]) -> str:
    lines = [f"  {'tokens':<10}{'mean':>10}{'p50':>8}{'p95':>8}{'max':>8}"]
    lines += [f"  {name:<10}{s['mean']:>10}{s['p50']:>8}{s['p95']:>8}{s['max']:>8}" for name, s in rows.items()]
    return "\n".join(lines)


def describe_dataset(cfg, tokenizer: Callable[[], tuple[Any, dict | None]]) -> str:
    """Report, then token lengths of prompt / chosen / rejected (completions alone) before the length filter.
    `tokenizer()` gives the run's tokenizer and its identity: asked for once the rows are read (building the tiny
    model takes a minute; data that cannot be read fails before it)."""
    prepared = prepare_preferences(cfg.dataset, mirror=cfg.paths.mirror, cache=cfg.paths.stages)
    tokenizer, tokenizer_id = tokenizer()
    max_length = cfg.algorithm.get("max_length", 4096)
    # pairs too long by their characters alone to fit max_length are not tokenised (validate.token_lengths)
    lengths = [t for t in zip(*pair_token_lengths(prepared.dataset, tokenizer, max_length=max_length)) if None not in t]
    prompt, chosen, rejected = zip(*lengths) if lengths else ((0,), (0,), (0,))
    stats = {"prompt": length_stats(prompt),
             "chosen": length_stats([c - p for c, p in zip(chosen, prompt)]),
             "rejected": length_stats([r - p for r, p in zip(rejected, prompt)])}
    untokenised = len(prepared.dataset) - len(lengths)
    fitted = drop_overlength(prepared, tokenizer, max_length, 1.0, tokenizer_id, cfg.paths.stages)
    return "\n".join([f"dataset {cfg.dataset.name} (source {cfg.dataset.source})", fitted.report.summary(),
                      f"  (over_length: prompt + completion > algorithm.max_length={max_length})", table(stats)]
                     + ([f"  ({untokenised} pair(s) too long to tokenise are not in these lengths)"] if untokenised else []))


def describe_prompts(cfg, tokenizer) -> str:
    prepared = prepare_prompts(cfg.prompts, cfg.paths.mirror, cfg.dataset, None, cfg.paths.stages)
    lengths = [n for n in token_lengths(tokenizer, prepared.dataset["prompt"], add_generation_prompt=True,
                                        max_tokens=cfg.prompts.max_prompt_tokens) if n is not None]
    fitted = prepare_prompts(cfg.prompts, cfg.paths.mirror, cfg.dataset, tokenizer, cfg.paths.stages)
    return "\n".join([f"prompts {cfg.prompts.name} (source {cfg.prompts.source})", fitted.report.summary(),
                      f"  (over_length: > prompts.max_prompt_tokens={cfg.prompts.max_prompt_tokens})",
                      table({"prompt": length_stats(lengths)})])
