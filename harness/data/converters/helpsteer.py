"""HelpSteer (`nvidia/HelpSteer`): up to four responses per prompt, each rated 0-4 on five attributes.

One row (layout as on the dataset card; texts abbreviated):
    {"prompt": "What are the three most important things to consider when deciding what technology to use ...",
     "response": "Here are some important factors to consider ...",
     "helpfulness": 3, "correctness": 4, "coherence": 4, "complexity": 2, "verbosity": 2}

Rule (the paper's conversion script, hamishivi/EasyLM `conversion_scripts/convert_preference_data.py`, every
version up to dbf2212, HelpSteer branch): group rows by prompt (prompts with one response are skipped); sort a
prompt's responses ASCENDING by the mean of helpfulness, correctness, coherence and complexity (verbosity excluded);
chosen = `samples[0]`, i.e. the LOWEST-rated response; rejected = `Random(seed).choice(samples[1:])`. The released
`helpsteer` split was built by that script, so it carries this direction.
Option `chosen` (converter_options): `lowest` (default: the script, hence the released split) or `highest` (the rule
as protocol.md states it: the top-rated response chosen, a random other rejected). `python -m harness.data verify`
checks the direction on the real data (joins the released split to nvidia/HelpSteer and compares ratings).
"""

from __future__ import annotations

from statistics import mean

from harness.data.converters.base import Converter, Skip, pair, single_turn

ASPECTS = ("helpfulness", "correctness", "coherence", "complexity")


def convert(rows, ctx):
    order = ctx.options.get("chosen", "lowest")
    if order not in ("highest", "lowest"):
        raise ValueError(f"helpsteer converter option chosen={order!r}; valid: ['highest', 'lowest']")
    prompts: dict[str, list[dict]] = {}
    for r in rows:
        prompts.setdefault(r["prompt"], []).append(r)
    for prompt, samples in prompts.items():
        if len(samples) < 2:
            yield Skip("single_response")
            continue
        # Stable sort: equal means keep their (seeded) row order, as the script's `sorted` did.
        ranked = sorted(samples, key=lambda s: mean(s[a] for a in ASPECTS), reverse=order == "highest")
        rejected = ctx.rng.choice(ranked[1:])
        yield pair(single_turn(prompt, ranked[0]["response"]), single_turn(prompt, rejected["response"]))


CONVERTER = Converter(convert, columns=("prompt", "response", *ASPECTS))
