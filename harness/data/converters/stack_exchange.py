"""StackExchange (`lvwerra/stack-exchange-paired`): a question with two answers, the better-voted one as `response_j`.

One row (layout as on the dataset card; texts abbreviated):
    {"qid": 20, "question": "How do I get the current date in JavaScript? ...", "date": "2008/08/02",
     "metadata": ["https://stackoverflow.com/questions/20", "https://stackoverflow.com", "https://stackoverflow.com/users/3"],
     "response_j": "Use `new Date()` ...", "response_k": "`var d = Date.now()` ..."}

Rule (protocol): `response_j` chosen, `response_k` rejected; the question is the user turn. Capped at 500k rows.
"""

from __future__ import annotations

from harness.data.converters.base import Converter, pair, single_turn


def convert(rows, ctx):
    for r in rows:
        yield pair(single_turn(r["question"], r["response_j"]), single_turn(r["question"], r["response_k"]))


CONVERTER = Converter(convert, columns=("question", "response_j", "response_k"))
