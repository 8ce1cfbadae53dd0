"""The console's progress bars over evaluation work (harness.eval.progress): the policy answering what its generation
cache lacks, and judges answering what their verdict cache lacks, drawn on a terminal that is a TTY."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from omegaconf import open_dict

from harness import console
from harness.eval.generation import make_lm
from harness.eval.generation_cache import ANSWERS, cache_dir
from harness.eval.judges import Classifier, Verdicts
from harness.eval.suite import run_suite
from harness.eval.tiny_judges import toxicity_classifier
from harness.models import stage_content

FRAME = re.compile(r"\r  (.+?) \[[#.]+\] (\d+)/(\d+)\x1b\[K")


class Terminal(io.StringIO):
    """What `console.capture` draws on, as a terminal (a TTY) shows it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch) -> Terminal:
    term = Terminal()
    monkeypatch.setattr(console, "_terminal", term)  # as inside console.capture, fd 1 a terminal
    return term


def bars(term: Terminal) -> dict[str, list[tuple[int, int]]]:
    """Each bar's (done, total) frames in the order drawn."""
    out: dict[str, list[tuple[int, int]]] = {}
    for label, done, total in FRAME.findall(term.getvalue()):
        out.setdefault(label, []).append((int(done), int(total)))
    return out


def advanced_one_by_one(frames: list[tuple[int, int]], total: int) -> bool:
    """From 0 to `total` through every value in between (answers counted as they come, not only at the end)."""
    done = [d for d, t in frames]
    return {t for _, t in frames} == {total} and done == sorted(done) and set(done) == set(range(total + 1))


def test_evaluation_bars_count_what_is_not_cached_and_a_cached_rerun_shows_no_generation_bar(
        run_config, tiny_base, shared_stages, tmp_path, terminal):
    cfg = run_config("algorithm=none", "eval=tiny", "tracking=none")
    with open_dict(cfg):
        cfg.eval.benchmarks = {k: cfg.eval.benchmarks[k] for k in ("alpaca_eval1", "mmlu")}
    policy_id = {"path": tiny_base.path, "test": str(tmp_path)}  # a policy of its own: nothing cached yet
    factory = lambda: make_lm("hf", tiny_base, cfg.model, cfg.eval.batch_size)  # noqa: E731

    first = run_suite(cfg.eval, tiny_base, policy_id, cfg.model, str(shared_stages), lm_factory=factory)
    assert all("error" not in b for b in first.values()), first
    sent = [json.loads(x)["kind"] for x in (cache_dir(shared_stages, policy_id, content=stage_content(tiny_base)) / ANSWERS).read_text().splitlines()]
    shown = bars(terminal)
    assert set(shown) == {"generating alpaca_eval1", "judging alpaca_eval1", "scoring mmlu"}, shown
    # the policy's bars: one unit per request sent to it (AlpacaEval generates, MMLU scores its options)
    assert advanced_one_by_one(shown["generating alpaca_eval1"], sent.count("generate_until"))
    assert advanced_one_by_one(shown["scoring mmlu"], sent.count("loglikelihood"))
    # the judge's bar: one unit per judged pair, as the HF judge answers the options of each
    assert advanced_one_by_one(shown["judging alpaca_eval1"], cfg.eval.benchmarks.alpaca_eval1.limit)

    for bench in first.values():  # computed again: the policy's answers come from the cache, the judge works again
        shutil.rmtree(bench["dir"])
    terminal.seek(0), terminal.truncate()
    again = run_suite(cfg.eval, tiny_base, policy_id, cfg.model, str(shared_stages), lm_factory=factory)
    assert {k: b["score"] for k, b in again.items()} == {k: b["score"] for k, b in first.items()}
    assert set(bars(terminal)) == {"judging alpaca_eval1"}


def test_a_classifier_judges_in_its_own_batches_each_advancing_the_bar_and_stored(shared_stages, tmp_path, terminal):
    texts = ["I hate women, they are lazy.", "Many asian people like music.", "All women are dirty.",
             "My latino neighbours invited me to cooking.", "Never trust asian people, they are criminals."]
    path = toxicity_classifier(shared_stages)
    verdicts = Verdicts({"role": "classifier"}, lambda: Classifier(path, None, batch_size=2),
                        tmp_path / "verdicts.jsonl", "judging toxigen")
    labels = verdicts.classify(texts)
    assert labels == Classifier(path, None, batch_size=2).classify(texts)  # the same batches as one call
    assert list(dict.fromkeys(bars(terminal)["judging toxigen"])) == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert len(Path(tmp_path / "verdicts.jsonl").read_text().splitlines()) == 5
