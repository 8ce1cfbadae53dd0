"""Chatbot Arena 2023 (`lmsys/chatbot_arena_conversations`, gated: accept its terms and log in before prefetching).

One row (layout as on the dataset card; texts abbreviated):
    {"question_id": "58210e39b3fd4441a2bd4a518bb44c2d", "model_a": "chatglm-6b", "model_b": "koala-13b",
     "winner": "model_b", "judge": "arena_user_973",
     "conversation_a": [{"content": "What is the difference between OpenCL and CUDA?", "role": "user"},
                        {"content": "OpenCL and CUDA are two different programming models ...", "role": "assistant"}],
     "conversation_b": [{"content": "What is the difference between OpenCL and CUDA?", "role": "user"},
                        {"content": "OpenCL and CUDA are both programming languages ...", "role": "assistant"}],
     "turn": 1, "anony": true, "language": "English", "tstamp": 1682351591.1322, "openai_moderation": {...},
     "toxic_chat_tag": {...}}

Rule (protocol): the winner's conversation is chosen; ties (`tie`, `tie (bothbad)`) are dropped (presumed: the paper
prints 20,465 rows; the exact filter behind that count is not published).
Options (converter_options), candidate filters for reproducing that count, all off by default; each row they leave
out is counted as skipped under its name (`python -m harness.data verify` prints the kept count):
    single_turn_only: true   keep only one-turn conversations (`turn == 1`)           -> skipped `multi_turn`
    language: English        keep only rows in that language                           -> skipped `other_language`
    anonymous_only: true     keep only battles with hidden model names (`anony`)       -> skipped `not_anonymous`
"""

from __future__ import annotations

from harness.data.converters.base import Converter, Skip, pair, stripped

TIES = ("tie", "tie (bothbad)")


def filtered(r: dict, options: dict) -> str | None:
    """The option that leaves this row out, or None."""
    if options.get("single_turn_only") and r.get("turn") != 1:
        return "multi_turn"
    if options.get("language") and r.get("language") != options["language"]:
        return "other_language"
    if options.get("anonymous_only") and not r.get("anony"):
        return "not_anonymous"
    return None


def convert(rows, ctx):
    for r in rows:
        rule = filtered(r, ctx.options)
        if rule:
            yield Skip(rule)
        elif r["winner"] in TIES:
            yield Skip("tie")
        elif r["winner"] == "model_a":
            yield pair(stripped(r["conversation_a"]), stripped(r["conversation_b"]))
        elif r["winner"] == "model_b":
            yield pair(stripped(r["conversation_b"]), stripped(r["conversation_a"]))
        else:
            yield Skip("unknown_winner", bad=True, detail=f"winner={r['winner']!r}")


CONVERTER = Converter(convert, columns=("winner", "conversation_a", "conversation_b"))
