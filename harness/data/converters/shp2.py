"""SHP-2 (`stanfordnlp/SHP-2`): Reddit / StackExchange posts with two top-level answers and a collective preference.

One row (layout as on the dataset card; texts abbreviated):
    {"post_id": "qt3nxl", "domain": "askculinary_train", "upvote_ratio": 0.98,
     "history": "What's the best way to disassemble raspberries? Like this, but down to the individual seeds ...",
     "c_root_id_A": "hkh25sc", "c_root_id_B": "hkh25lp", "created_at_utc_A": 1636822112, "created_at_utc_B": 1636822110,
     "score_A": 340, "score_B": 166, "human_ref_A": "Pectinex, perhaps? ...", "human_ref_B": "Raspberry juice ...",
     "labels": 1, "seconds_difference": 2.0, "score_ratio": 2.05}

Rule (protocol): `labels == 1` means A is preferred, 0 means B; the post is the user turn. Capped at 500k rows
(`upstream_max_rows`). A label other than 0/1 is a malformed row.
"""

from __future__ import annotations

from harness.data.converters.base import Converter, Skip, pair, single_turn


def convert(rows, ctx):
    for r in rows:
        if r["labels"] not in (0, 1):
            yield Skip("bad_label", bad=True, detail=f"labels={r['labels']!r}, post_id={r.get('post_id')!r}")
            continue
        a, b = r["human_ref_A"], r["human_ref_B"]
        better, worse = (a, b) if r["labels"] == 1 else (b, a)
        yield pair(single_turn(r["history"], better), single_turn(r["history"], worse))


CONVERTER = Converter(convert, columns=("history", "human_ref_A", "human_ref_B", "labels"))
