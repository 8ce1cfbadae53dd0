"""Chatbot Arena 2024 (`lmsys/lmsys-arena-human-preference-55k`, the Kaggle competition's train.csv).

One row (layout as on the dataset card; the turn lists are JSON-encoded strings; texts abbreviated):
    {"id": 30192, "model_a": "gpt-4-1106-preview", "model_b": "gpt-4-0613",
     "prompt": "[\"Is it morally right to try to have a certain percentage of females on managerial positions?\", ...]",
     "response_a": "[\"The question of whether it is morally right ...\", ...]",
     "response_b": "[\"As an AI, I don't have personal beliefs ...\", ...]",
     "winner_model_a": 1, "winner_model_b": 0, "winner_tie": 0}

Rule (protocol): the winner's conversation is chosen, ties dropped. Turn i of a conversation is prompt[i] followed
by response[i]; a `null` turn (the arena lost it) becomes a missing message and validation drops the pair.
Dropping ties alone probably keeps more than Table 1's 34,269 pairs; candidate filters are options, off by default
(the row they leave out is counted as skipped under its name; `python -m harness.data verify` prints the kept count):
    single_turn_only: true    keep only one-turn conversations                          -> skipped `multi_turn`
    drop_null_turns: true     skip (rather than count as bad) conversations with a null turn -> skipped `null_turn`
"""

from __future__ import annotations

import json

from harness.data.converters.base import Converter, Skip, msg, pair


def _turns(text) -> list | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def _conversation(prompts: list, responses: list) -> list[dict]:
    out = []
    for p, r in zip(prompts, responses):
        out += [msg("user", p), msg("assistant", r)]
    return out


def convert(rows, ctx):
    for r in rows:
        if r["winner_tie"] == 1:
            yield Skip("tie")
            continue
        prompts, a, b = _turns(r["prompt"]), _turns(r["response_a"]), _turns(r["response_b"])
        if prompts is None or a is None or b is None or r["winner_model_a"] == r["winner_model_b"]:
            yield Skip("unparseable", bad=True, detail=f"prompt={r['prompt']!r:.80}")
            continue
        if ctx.options.get("single_turn_only") and len(prompts) != 1:
            yield Skip("multi_turn")
            continue
        if ctx.options.get("drop_null_turns") and any(t is None for t in (*prompts, *a, *b)):
            yield Skip("null_turn")
            continue
        conv_a, conv_b = _conversation(prompts, a), _conversation(prompts, b)
        yield pair(conv_a, conv_b) if r["winner_model_a"] == 1 else pair(conv_b, conv_a)


CONVERTER = Converter(convert, columns=("prompt", "response_a", "response_b", "winner_model_a", "winner_model_b",
                                       "winner_tie"))
