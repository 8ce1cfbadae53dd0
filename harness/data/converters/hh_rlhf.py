"""HH-RLHF (`Anthropic/hh-rlhf`): two transcripts per row that share their turns up to the last assistant reply.

One row (layout as on the dataset card):
    {"chosen": "\n\nHuman: What kind of noises did dinosaurs make?\n\nAssistant: Humans and dinosaurs didn't live at
                the same time, so it's really hard to say. ...",
     "rejected": "\n\nHuman: What kind of noises did dinosaurs make?\n\nAssistant: Humans and dinosaurs didn't live at
                  the same time, so it's really hard to say. ...\n\nHuman: I want to know ...\n\nAssistant: ..."}

Rule (protocol): parse the `Human:` / `Assistant:` turns; the turns both transcripts share are the prompt and each
side keeps its first turn after them (the paper's script did the same). A pair where one transcript has nothing after
the shared turns is malformed and dropped. Turns are split only at the transcript markers ("\n\nHuman:",
"\n\nAssistant:"), so a message that quotes "Human:" mid-line stays whole (the paper's script split on any "Human:").
Option `parse` (converter_options): `markers` (default, as above) or `script`: the paper's script's parser
(hamishivi/EasyLM conversion_scripts/convert_preference_data.py, parse_out_prompt_turns_hh_format): split on every
"Human:", then each piece at "Assistant:" (only the text up to a second "Assistant:" is kept), empty turns dropped;
a pair with nothing after the shared turns is skipped by rule (`no_diverging_turn`, not counted as bad), as the script
skipped it silently.
"""

from __future__ import annotations

import re

from harness.data.converters.base import Converter, Skip, msg, pair

MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant):")
ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_turns(text: str) -> list[dict]:
    """'\\n\\nHuman: hi\\n\\nAssistant: hello' -> [{user: hi}, {assistant: hello}] (contents stripped)."""
    parts = MARKER.split((text or "").lstrip())
    # parts = [preamble, role, content, role, content, ...]; text before the first marker is not a turn.
    return [msg(ROLES[role], content) for role, content in zip(parts[1::2], parts[2::2])]


def parse_turns_script(text: str) -> list[dict]:
    """The paper's script's turn parser: every "Human:" starts a piece; a piece is the user text up to "Assistant:"
    and the assistant text up to the next "Assistant:" (if any); empty texts are no turns."""
    turns = []
    for piece in (text or "").split("Human:"):
        if not piece.strip():
            continue
        human, *assistant = piece.split("Assistant:")
        if human.strip():
            turns.append(msg("user", human))
        if assistant and assistant[0].strip():
            turns.append(msg("assistant", assistant[0]))
    return turns


PARSERS = {"markers": parse_turns, "script": parse_turns_script}


def parser(options: dict):
    name = options.get("parse", "markers")
    if name not in PARSERS:
        raise ValueError(f"converter option parse={name!r}; valid: {sorted(PARSERS)}")
    return PARSERS[name]


def shared_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def convert(rows, ctx):
    parse = parser(ctx.options)
    script = parse is parse_turns_script
    for r in rows:
        chosen, rejected = parse(r["chosen"]), parse(r["rejected"])
        n = shared_prefix(chosen, rejected)
        if n >= len(chosen) or n >= len(rejected):
            yield Skip("no_diverging_turn", bad=not script, detail=f"chosen={r['chosen']!r:.80}")
            continue
        yield pair(chosen[: n + 1], rejected[: n + 1])


CONVERTER = Converter(convert, columns=("chosen", "rejected"))
