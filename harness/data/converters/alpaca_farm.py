"""AlpacaFarm human and GPT-4 preferences (`tatsu-lab/alpaca_farm`, configs `alpaca_human_preference` and
`alpaca_gpt4_preference`, split `preference`). The hub repo is a loading script, which datasets >= 4 no longer runs,
so the configs read its JSON files directly (`upstream_data_files`).

One row (layout as in the repo's loading script; texts abbreviated):
    {"instruction": "Name three benefits of eating healthy.", "input": "",
     "output_1": "Eating healthy provides more energy ...", "output_2": "1. Improved physical health ...",
     "preference": 2}
(the human file also carries annotator fields, unused here).

Rule: `preference` 1 or 2 names the preferred output. The user turn is the instruction, followed by the input after a
blank line when there is one (inferred: the paper's conversion of this source is not published).
"""

from __future__ import annotations

from harness.data.converters.base import Converter, Skip, pair, single_turn


def convert(rows, ctx):
    for r in rows:
        if r["preference"] not in (1, 2):
            yield Skip("bad_preference", bad=True, detail=f"preference={r['preference']!r}: {r['instruction']!r}")
            continue
        prompt = r["instruction"] if not r.get("input") else f"{r['instruction']}\n\n{r['input']}"
        better, worse = (r["output_1"], r["output_2"]) if r["preference"] == 1 else (r["output_2"], r["output_1"])
        yield pair(single_turn(prompt, better), single_turn(prompt, worse))


CONVERTER = Converter(convert, columns=("instruction", "input", "output_1", "output_2", "preference"))
