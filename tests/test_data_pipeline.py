"""The data path inside a run: pairs over the recipe's max length are dropped with the base model's tokenizer and
every count lands in the run's training metrics; `describe` shows the same numbers. Uses the tiny model."""

from __future__ import annotations

import re

import pytest

from harness.data import __main__ as cli
from harness.data.preferences import prepare_preferences
from harness.models import load_tokenizer
from harness.pipeline import run

MAX_LENGTH = 40


def over_length(cfg, base) -> int:
    """Pairs longer than MAX_LENGTH tokens, counted directly from the rendered conversations (the counting rule is
    checked against hand-counted tokens in test_token_lengths.py)."""
    tok = load_tokenizer(base, cfg.model.chat_template)
    n = lambda msgs: len(tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"])  # noqa: E731
    pairs = prepare_preferences(cfg.dataset).dataset
    return sum(max(n(r["prompt"] + r["chosen"]), n(r["prompt"] + r["rejected"])) > MAX_LENGTH for r in pairs)


@pytest.mark.slow
def test_dpo_run_records_data_counts_and_trains_on_what_fits(run_config, tiny_base):
    common = (f"algorithm.max_length={MAX_LENGTH}", "dataset.max_bad_fraction=1.0", "algorithm.max_steps=1",
              "dataset.eval_split=null", "eval=smoke", "tracking=none")
    cfg = run_config(*common, "algorithm.drop_overlength=true")  # the reward models' rule, an option for DPO
    dropped = over_length(cfg, tiny_base)
    assert 0 < dropped < 128
    training = run(cfg)["training"]
    assert training["data_dropped_over_length"] == dropped
    assert training["data_rows"] == training["train_rows"] == 256 - dropped
    assert training["data_dropped_empty_message"] == 0 and training["data_dropped_identical_pair"] == 0
    # DPO's default, as the paper's code: over-length pairs are truncated and kept
    kept = run(run_config(*common))["training"]
    assert kept["data_dropped_over_length"] == 0 and kept["train_rows"] == 256


@pytest.mark.slow
def test_describe_prints_rows_drops_and_token_lengths(run_config, tiny_base, shared_stages, home, capsys):
    dropped = over_length(run_config(), tiny_base)
    assert cli.main(["describe", "dataset=tiny", f"algorithm.max_length={MAX_LENGTH}", f"paths.stages={shared_stages}",
                     f"paths.home={home}"]) == 0
    out = capsys.readouterr().out
    assert f"tiny: {256 - dropped} pairs kept" in out
    assert re.search(rf"dropped +{dropped} over_length", out) and re.search(r"dropped +0 identical_pair", out)
    stats = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip().startswith(("prompt", "chosen", "rejected"))}
    assert set(stats) == {"prompt", "chosen", "rejected"}
    assert all(float(mean) <= int(mx) for mean, _, _, mx in stats.values())
