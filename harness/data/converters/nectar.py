"""Nectar (`berkeley-nest/Nectar`): a (possibly multi-turn) prompt with seven answers ranked by GPT-4.

One row (layout as on the dataset card; texts abbreviated):
    {"prompt": "\n\nHuman: 0.002 = 1000 \n1 = x?\n\nAssistant: ",
     "answers": [{"answer": "To find the value of x ...", "model": "gpt-4", "rank": 1.0},
                 {"answer": "If 0.002 equals 1000, then 1 would equal 500,000.", "model": "gpt-4", "rank": 2.0}, ...],
     "turns": 1, "num_responses": 7, "source": ["sharegpt"], "good_natured": true}

Rule (protocol): the prompt's Human/Assistant turns (parsed as for HH-RLHF; the trailing empty "Assistant:" is the
slot the answers fill) are the prompt; chosen = the rank-1 answer, rejected = a random answer of a lower rank.
Option `parse: script` (converter_options): the paper's script exactly (hamishivi/EasyLM
conversion_scripts/convert_preference_data.py, Nectar branch): its turn parser (see hh_rlhf.py) and rejected = a
random one of all answers after the first in rank order (ties with rank 1 included); the same draws when ranks are
unique.
"""

from __future__ import annotations

from harness.data.converters.base import Converter, Skip, msg, pair
from harness.data.converters.hh_rlhf import parse_turns_script, parser


def convert(rows, ctx):
    parse = parser(ctx.options)
    script = parse is parse_turns_script
    for r in rows:
        turns = parse(r["prompt"])
        if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
            turns = turns[:-1]
        answers = sorted((a for a in r["answers"] or [] if a.get("rank") is not None), key=lambda a: a["rank"])
        lower = answers[1:] if script else [a for a in answers[1:] if a["rank"] > answers[0]["rank"]]
        if not lower:
            yield Skip("no_lower_ranked_answer", bad=True, detail=f"prompt={r['prompt']!r:.80}")
            continue
        rejected = ctx.rng.choice(lower)
        yield pair(turns + [msg("assistant", answers[0]["answer"])], turns + [msg("assistant", rejected["answer"])])


CONVERTER = Converter(convert, columns=("prompt", "answers"))
