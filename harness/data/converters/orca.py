"""Orca DPO pairs (`Intel/orca_dpo_pairs`): OpenOrca questions with a GPT-4 answer (chosen) and a weaker one.

One row (layout as on the dataset card; texts abbreviated):
    {"system": "You are an AI assistant. You will be given a task. You must generate a detailed and long answer.",
     "question": "You will be given a definition of a task first, then some input of the task. ...",
     "chosen": "[\n  [\"AFC Ajax (amateurs)\", \"has ground\", \"Sportpark De Toekomst\"], ...]",
     "rejected": " Sure, I'd be happy to help! ..."}

Rule (protocol: "as released"): the question is the user turn; `chosen` and `rejected` are the answers. The system
prompt is left out, as the paper's script did.
"""

from __future__ import annotations

from harness.data.converters.base import Converter, pair, single_turn


def convert(rows, ctx):
    for r in rows:
        yield pair(single_turn(r["question"], r["chosen"]), single_turn(r["question"], r["rejected"]))


CONVERTER = Converter(convert, columns=("question", "chosen", "rejected"))
