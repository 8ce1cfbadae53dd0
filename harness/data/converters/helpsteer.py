"""HelpSteer (`nvidia/HelpSteer`): up to four responses per prompt, each rated 0-4 on five attributes.

One row (layout as on the dataset card; texts abbreviated):
    {"prompt": "What are the three most important things to consider when deciding what technology to use ...",
     "response": "Here are some important factors to consider ...",
     "helpfulness": 3, "correctness": 4, "coherence": 4, "complexity": 2, "verbosity": 2}

Rule (protocol): group rows by prompt (prompts with one response are skipped); rank a prompt's responses by the mean
of helpfulness, correctness, coherence and complexity (verbosity excluded); chosen = the top one, rejected = a random
one of the others.
Option `chosen` (converter_options): `highest` (default, the rule as stated) or `lowest`. The paper's script sorted
ascending and took the first, which makes the lowest-rated response chosen; protocol.md flags that sort as looking
inverted. Whether the released split carries that inversion could not be checked here (no network): `lowest`
reproduces the script literally.
"""

from __future__ import annotations

from statistics import mean

from harness.data.converters.base import Converter, Skip, pair, single_turn

ASPECTS = ("helpfulness", "correctness", "coherence", "complexity")


def convert(rows, ctx):
    order = ctx.options.get("chosen", "highest")
    if order not in ("highest", "lowest"):
        raise ValueError(f"helpsteer converter option chosen={order!r}; valid: ['highest', 'lowest']")
    prompts: dict[str, list[dict]] = {}
    for r in rows:
        prompts.setdefault(r["prompt"], []).append(r)
    for prompt, samples in prompts.items():
        if len(samples) < 2:
            yield Skip("single_response")
            continue
        # Stable sort: equal means keep their (seeded) row order.
        ranked = sorted(samples, key=lambda s: mean(s[a] for a in ASPECTS), reverse=order == "highest")
        rejected = ctx.rng.choice(ranked[1:])
        yield pair(single_turn(prompt, ranked[0]["response"]), single_turn(prompt, rejected["response"]))


CONVERTER = Converter(convert, columns=("prompt", "response", *ASPECTS))
