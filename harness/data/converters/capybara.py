"""Capybara 7k (`argilla/distilabel-capybara-dpo-7k-binarized`): multi-turn conversations, already binarized.

One row (layout as on the dataset card; texts abbreviated):
    {"source": "Airoboros", "conversation": [{"input": "...", "output": "..."}], "original_response": "...",
     "generation_prompt": ["..."], "raw_generation_responses": ["..."], "new_generations": ["...", "...", "..."],
     "prompt": "Write a haiku about autumn leaves ...",
     "chosen": [{"content": "Write a haiku about autumn leaves ...", "role": "user"},
                {"content": "Crimson leaves descend ...", "role": "assistant"}],
     "rejected": [{"content": "Write a haiku about autumn leaves ...", "role": "user"},
                  {"content": "Leaves fall ...", "role": "assistant"}],
     "rating_chosen": 5, "rating_rejected": 3, "chosen_model": "gpt-4-1106-preview", "rejected_model": "..."}

Rule (protocol): used as released; contents stripped.
"""

from __future__ import annotations

from harness.data.converters.base import Converter, pair, stripped


def convert(rows, ctx):
    for r in rows:
        yield pair(stripped(r["chosen"]), stripped(r["rejected"]))


CONVERTER = Converter(convert, columns=("chosen", "rejected"))
