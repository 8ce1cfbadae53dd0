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


def shared_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def convert(rows, ctx):
    for r in rows:
        chosen, rejected = parse_turns(r["chosen"]), parse_turns(r["rejected"])
        n = shared_prefix(chosen, rejected)
        if n >= len(chosen) or n >= len(rejected):
            yield Skip("no_diverging_turn", bad=True, detail=f"chosen={r['chosen']!r:.80}")
            continue
        yield pair(chosen[: n + 1], rejected[: n + 1])


CONVERTER = Converter(convert, columns=("chosen", "rejected"))
