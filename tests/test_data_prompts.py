"""Policy prompts: the tulu-2.5-prompts splits, prompts of the run's own preference dataset, and the length filter."""

from __future__ import annotations

import pytest
from conftest import compose
from test_data_support import FIXTURES, mirror_rows

from harness.data.preferences import prepare_preferences
from harness.data.prompts import hub_sources, prepare_prompts
from harness.data.validate import DataError, token_lengths
from harness.config.schema import TinyModelSpec
from harness.tiny.model import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    """The tiny model's tokenizer (built in seconds, no model needed)."""
    return build_tokenizer(TinyModelSpec())


def test_paper_prompt_sets_are_splits_of_tulu_2_5_prompts():
    splits = {n: compose(f"prompts={n}").prompts for n in ("uf", "gsm8k", "math", "mixed")}
    assert {n: (p.hub_id, p.split, p.source) for n, p in splits.items()} == {
        "uf": ("allenai/tulu-2.5-prompts", "ultrafeedback_prompts", "tulu25"),
        "gsm8k": ("allenai/tulu-2.5-prompts", "gsm8k_prompts", "tulu25"),
        "math": ("allenai/tulu-2.5-prompts", "math_prompts_20k", "tulu25"),
        "mixed": ("allenai/tulu-2.5-prompts", "ultrafeedback_code_math_prompts", "tulu25")}
    assert all(p.max_prompt_tokens == 1024 for p in splits.values())


def test_released_prompts_load_from_the_mirror_with_bad_rows_counted(tmp_path):
    cfg = compose("prompts=uf", "prompts.max_bad_fraction=0.5").prompts
    mirror_rows(tmp_path, hub_sources(cfg)[0],
                FIXTURES / "tulu25_prompts" / "ultrafeedback_prompts.jsonl")
    prepared = prepare_prompts(cfg, mirror=str(tmp_path))
    assert prepared.report.dropped == {"empty_message": 1, "missing_field": 2}
    prompts = {r["id"]: r["prompt"] for r in prepared.dataset}
    assert sorted(prompts) == ["uf-0", "uf-1", "uf-4"]
    assert prompts["uf-1"] == [{"role": "user", "content": "Explain recursion to a child."}]  # reference answer removed
    assert [m["role"] for m in prompts["uf-4"]] == ["user", "assistant", "user"]


def test_from_dataset_prompts_are_the_preference_pairs_prompts():
    cfg = compose("prompts=from_dataset")
    pairs = prepare_preferences(cfg.dataset).dataset
    prompts = prepare_prompts(cfg.prompts, dataset_cfg=cfg.dataset).dataset
    assert len(prompts) == len(pairs) == 256
    assert list(prompts["prompt"]) == list(pairs["prompt"])


def test_from_dataset_without_the_dataset_says_how_to_pass_it():
    with pytest.raises(DataError, match=r"need the run's dataset config: load_prompts\(cfg.prompts, dataset_cfg=cfg.dataset\)"):
        prepare_prompts(compose("prompts=from_dataset").prompts)


def test_prompt_length_filter_drops_and_counts_long_prompts(tokenizer):
    cfg = compose("prompts=tiny", "prompts.max_prompt_tokens=14", "prompts.max_bad_fraction=1.0").prompts
    everything = prepare_prompts(cfg).dataset
    # token_lengths itself is checked against hand-counted tokens in test_token_lengths.py
    lengths = token_lengths(tokenizer, everything["prompt"], add_generation_prompt=True)
    long = sum(n > 14 for n in lengths)
    assert 0 < long < len(lengths)
    kept = prepare_prompts(cfg, tokenizer=tokenizer)
    assert kept.report.dropped == {"over_length": long}
    assert len(kept.dataset) == len(lengths) - long
    assert max(token_lengths(tokenizer, kept.dataset["prompt"], add_generation_prompt=True)) <= 14


def test_mostly_long_prompts_stop_with_the_error(tokenizer):
    cfg = compose("prompts=tiny", "prompts.max_prompt_tokens=5").prompts
    with pytest.raises(DataError, match=r"prompt set 'tiny': 128 of 128 prompts are invalid.*over_length"):
        prepare_prompts(cfg, tokenizer=tokenizer)


def test_prompts_subsample_with_a_seed(tmp_path):
    ids = lambda seed: list(prepare_prompts(compose("prompts=tiny", "prompts.max_samples=20", f"prompts.seed={seed}").prompts,  # noqa: E731
                                            cache=str(tmp_path)).dataset["id"])
    assert ids(1) == ids(1) and ids(1) != ids(2) and len(ids(1)) == 20


def test_prompt_column_follows_easylm_precedence_and_is_printed(tmp_path, capsys):
    # hamishivi/EasyLM EasyLM/data.py, TuluPromptDataset._process_sample: instruction, then history_messages, messages,
    # conversation, chosen; the first column the dataset has is used for every row.
    cfg = compose("prompts=uf").prompts
    both = [{"messages": [{"role": "user", "content": f"from messages {i}"}], "instruction": f"from instruction {i}"}
            for i in range(3)]
    mirror_rows(tmp_path, hub_sources(cfg)[0], both)
    prepared = prepare_prompts(cfg, mirror=str(tmp_path))
    assert [r["prompt"] for r in prepared.dataset] == [[{"role": "user", "content": f"from instruction {i}"}] for i in range(3)]
    assert "prompts uf: prompt column 'instruction'" in capsys.readouterr().out
