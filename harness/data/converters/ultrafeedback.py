"""UltraFeedback, two binarizations of the same ratings.

Fine-grained (`argilla/ultrafeedback-binarized-preferences-cleaned`): chosen/rejected by the mean of the four aspect
ratings, ties already removed. One row (layout as on the dataset card; texts abbreviated):
    {"source": "evol_instruct", "prompt": "Can you write a C++ program that prompts the user to enter the name of a
     country ...", "chosen": [{"content": "Can you write a C++ program ...", "role": "user"},
     {"content": "Sure, here's a C++ program ...", "role": "assistant"}], "chosen-rating": 5.0,
     "chosen-model": "starchat", "rejected": [...], "rejected-rating": 4.25, "rejected-model": "vicuna-33b"}

Overall (`HuggingFaceH4/ultrafeedback_binarized`, split `train_prefs`): chosen/rejected by the overall score. One row:
    {"prompt": "how can i develop a habit of drawing daily", "prompt_id": "086b3e24f29b8956a01059f79c56db35d118a06fb6b8
     44b095737d042795cd43", "chosen": [{"content": "how can i develop ...", "role": "user"}, {"content": "Developing a
     daily habit of drawing can be challenging ...", "role": "assistant"}], "rejected": [...],
     "messages": [...], "score_chosen": 8.5, "score_rejected": 8.5}

Rules (protocol): both used as released, contents stripped; the overall set is restricted to the prompts of the
fine-grained set (option `restrict_to`: the hub split whose `prompt` column is the allow-list; the paper's script
loaded the argilla set for it).
"""

from __future__ import annotations

from harness.data.converters.base import Converter, Skip, pair, stripped
from harness.data.mirror import HubSplit


def _allow_list(options: dict) -> list[HubSplit]:
    ref = options.get("restrict_to")
    if not ref:
        return []
    return [HubSplit(ref["hub_id"], ref.get("config"), ref.get("split", "train"), ref.get("revision"))]


def convert_fine_grained(rows, ctx):
    for r in rows:
        yield pair(stripped(r["chosen"]), stripped(r["rejected"]))


def convert_overall(rows, ctx):
    allowed = None
    for source in _allow_list(ctx.options):
        allowed = set(ctx.load(source)["prompt"])
    for r in rows:
        if allowed is not None and r["prompt"] not in allowed:
            yield Skip("prompt_not_in_fine_grained_set")
            continue
        yield pair(stripped(r["chosen"]), stripped(r["rejected"]))


FINE_GRAINED = Converter(convert_fine_grained, columns=("chosen", "rejected"))
OVERALL = Converter(convert_overall, columns=("prompt", "chosen", "rejected"), extras=_allow_list)
