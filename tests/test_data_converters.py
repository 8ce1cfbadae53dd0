"""Each upstream converter on hand-written rows in its source's real layout (malformed rows included): the exact pairs
out, and the drops/skips counted by reason. Rows reach the converter the way a run reads them: from an offline mirror,
through `dataset.source=upstream`."""

from __future__ import annotations

import random

import pytest
from conftest import compose
from test_data_support import FIXTURES, mirror_rows, pairs_only, read_jsonl

from harness.data import converters
from harness.data.converters import hh_rlhf
from harness.data.preferences import prepare_preferences, upstream_split
from harness.data.validate import DataError

# dataset entry -> (malformed rows dropped by reason, rows left out by the source's rule), counted by hand.
CASES = {
    "shp2": ({"empty_message": 1, "bad_label": 1, "identical_pair": 1}, {}),
    "stack_exchange": ({"empty_message": 1, "missing_field": 1}, {}),
    "prm800k": ({"missing_problem": 1}, {"no_found_error_solution": 1}),
    "chatbot_arena_2023": ({"empty_message": 1}, {"tie": 2}),
    "chatbot_arena_2024": ({"missing_field": 1, "unparseable": 1}, {"tie": 1}),
    "alpaca_farm_gpt4": ({"bad_preference": 1, "empty_message": 1}, {}),
    "hh_rlhf": ({"no_diverging_turn": 1, "empty_message": 1}, {}),
    "helpsteer": ({}, {"single_response": 1}),
    "capybara": ({"not_ending_with_assistant": 1}, {}),
    "orca": ({"empty_message": 1}, {}),
    "nectar": ({"no_lower_ranked_answer": 1}, {}),
    "ultrafeedback_fg": ({"identical_pair": 1}, {}),
    "ultrafeedback_overall": ({}, {"prompt_not_in_fine_grained_set": 1}),
}


def upstream(name: str, mirror, *overrides: str):
    """The composed upstream config of `name`, its fixture (and any second source) written into `mirror`."""
    cfg = compose(f"dataset={name}", "dataset.source=upstream", "dataset.max_bad_fraction=1.0", f"paths.mirror={mirror}",
                  *overrides).dataset
    mirror_rows(mirror, upstream_split(cfg), FIXTURES / name / "rows.jsonl")
    for extra in converters.get(cfg.converter).extras(dict(cfg.converter_options)):
        mirror_rows(mirror, extra, FIXTURES / "ultrafeedback_fg" / "rows.jsonl")  # UF overall's allow-list
    return cfg


@pytest.mark.parametrize("name", sorted(CASES))
def test_converter_yields_the_hand_written_pairs(tmp_path, name):
    dropped, skipped = CASES[name]
    cfg = upstream(name, tmp_path)
    prepared = prepare_preferences(cfg, mirror=str(tmp_path))
    assert pairs_only(prepared.dataset) == pairs_only(read_jsonl(FIXTURES / name / "expected.jsonl"))
    assert prepared.report.dropped == dropped
    assert prepared.report.skipped == skipped
    assert set(prepared.dataset["source"]) == {name}


def test_every_converter_has_a_fixture_case():
    used = {compose(f"dataset={n}").dataset.converter for n in CASES}
    assert used == set(converters.CONVERTERS)


def test_helpsteer_default_is_the_scripts_ascending_sort_and_the_stated_rule_is_an_option(tmp_path):
    # The paper's script (hamishivi/EasyLM conversion_scripts/convert_preference_data.py, HelpSteer branch) sorts a
    # prompt's responses ascending by the mean of 4 aspects and takes samples[0] as chosen: the lowest-rated one.
    rows = read_jsonl(FIXTURES / "helpsteer" / "rows.jsonl")
    by_default = upstream("helpsteer", tmp_path)
    assert by_default.converter_options.chosen == "lowest"
    chosen = {r["prompt"][0]["content"]: r["chosen"][0]["content"] for r in prepare_preferences(by_default, mirror=str(tmp_path)).dataset}
    # The mean ignores verbosity: the long "Define gravity." answer (complexity 1) ranks below the short one.
    assert chosen == {"Name a fruit.": "A car.", "Define gravity.": rows[3]["response"]}
    stated = compose("dataset=helpsteer", "dataset.source=upstream", "dataset.converter_options.chosen=highest").dataset
    chosen = {r["prompt"][0]["content"]: r["chosen"][0]["content"] for r in prepare_preferences(stated, mirror=str(tmp_path)).dataset}
    assert chosen == {"Name a fruit.": "An apple is a fruit.", "Define gravity.": rows[2]["response"]}


def test_helpsteer_rejects_an_unknown_option(tmp_path):
    cfg = upstream("helpsteer", tmp_path, "dataset.converter_options.chosen=best")
    with pytest.raises(ValueError, match=r"chosen='best'.*\['highest', 'lowest'\]"):
        prepare_preferences(cfg, mirror=str(tmp_path))


def test_upstream_column_mismatch_names_expected_and_found(tmp_path):
    cfg = compose("dataset=hh_rlhf", "dataset.source=upstream").dataset
    mirror_rows(tmp_path, upstream_split(cfg), [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"hh_rlhf.*missing column\(s\) \['chosen', 'rejected'\].*found \['question', 'answer'\]"):
        prepare_preferences(cfg, mirror=str(tmp_path))


def test_hh_turns_split_only_at_transcript_markers():
    turns = hh_rlhf.parse_turns("\n\nHuman: quote: Human: hi\n\nAssistant: Assistant: yes\n\nHuman: ok")
    assert turns == [{"role": "user", "content": "quote: Human: hi"}, {"role": "assistant", "content": "Assistant: yes"},
                     {"role": "user", "content": "ok"}]


def _nectar_rows(n: int) -> list[dict]:
    return [{"prompt": f"\n\nHuman: question {i}\n\nAssistant: ",
             "answers": [{"answer": f"answer {i}.{rank}", "model": "m", "rank": float(rank)} for rank in range(1, 8)]}
            for i in range(n)]


@pytest.mark.parametrize("name, rows, allowed", [
    # Nectar: any answer but the rank-1 one (".1").
    ("nectar", _nectar_rows(30), lambda r: not r.endswith(".1")),
    # HelpSteer (default: the script's ascending sort): any response but the lowest-rated one (".0", all aspects 0).
    ("helpsteer", [{"prompt": f"p{i}", "response": f"r{i}.{k}", "helpfulness": k, "correctness": k, "coherence": k,
                    "complexity": k, "verbosity": 0} for i in range(30) for k in range(4)], lambda r: not r.endswith(".0")),
    # PRM800k: the steps of one of the problem's found-error solutions.
    ("prm800k_phase2", [{"question": {"problem": f"p{i}", "ground_truth_solution": "truth", "pre_generated_steps": [f"wrong {k}"]},
                         "label": {"finish_reason": "found_error"}} for i in range(30) for k in range(4)],
     lambda r: r.startswith("wrong ")),
])
def test_random_choices_are_seeded(name, rows, allowed):
    """Same seed, same pairs; another seed, other pairs; every rejected answer is one the rule allows."""
    conv = converters.get(name)

    def run(seed):
        return [p["rejected"][-1]["content"] for p in conv.convert(iter(rows), converters.Context(random.Random(seed)))]

    first = run(42)
    assert len(first) == 30 and all(allowed(r) for r in first)
    assert first == run(42)
    assert first != run(7)


def test_mostly_bad_upstream_rows_stop_naming_the_dataset_and_the_bad_rows(tmp_path):
    cfg = upstream("shp2", tmp_path, "dataset.max_bad_fraction=0.1")
    with pytest.raises(DataError) as err:
        prepare_preferences(cfg, mirror=str(tmp_path))
    message = str(err.value)
    assert "dataset 'shp2': 3 of 5 pairs are invalid" in message
    assert "bad_label: labels=2, post_id='j1k2l3'" in message and "identical_pair" in message


def test_script_parser_splits_on_every_marker_and_drops_empty_turns():
    # hamishivi/EasyLM conversion_scripts/convert_preference_data.py, parse_out_prompt_turns_hh_format: pieces at every
    # "Human:", each cut at "Assistant:" keeping only the text before a second "Assistant:"; empty texts are no turns.
    turns = hh_rlhf.parse_turns_script("\n\nHuman: quote: Human: hi\n\nAssistant: Assistant: yes\n\nHuman: ok")
    assert turns == [{"role": "user", "content": "quote:"}, {"role": "user", "content": "hi"},
                     {"role": "user", "content": "ok"}]
    assert hh_rlhf.parse_turns_script("\n\nHuman: Say nothing.\n\nAssistant:") == [{"role": "user", "content": "Say nothing."}]


def test_hh_rlhf_script_parse_skips_what_the_script_skipped_silently(tmp_path):
    cfg = upstream("hh_rlhf", tmp_path, "dataset.converter_options.parse=script")
    prepared = prepare_preferences(cfg, mirror=str(tmp_path))
    # By hand from rows.jsonl: the identical pair and "Say nothing." (its empty reply is no turn) have nothing after
    # the shared turns: skipped by rule, not bad. The quoted "Human:" row ends chosen on a user turn: dropped.
    assert prepared.report.skipped == {"no_diverging_turn": 2}
    assert prepared.report.dropped == {"not_ending_with_assistant": 1}
    assert len(prepared.dataset) == 3


def test_nectar_script_rule_may_reject_an_answer_tied_with_rank_one():
    rows = [{"prompt": f"\n\nHuman: q{i}\n\nAssistant: ", "answers": [
        {"answer": "first", "rank": 1.0}, {"answer": "tied", "rank": 1.0}, {"answer": "worse", "rank": 2.0}]} for i in range(20)]
    conv = converters.get("nectar")

    def rejected(options):
        ctx = converters.Context(random.Random(42), options)
        return {p["rejected"][-1]["content"] for p in conv.convert(iter(rows), ctx)}

    assert rejected({}) == {"worse"}
    assert rejected({"parse": "script"}) == {"tied", "worse"}
    with pytest.raises(ValueError, match=r"parse='exact'.*\['markers', 'script'\]"):
        rejected({"parse": "exact"})


def test_identical_pairs_are_an_own_filter_that_can_be_turned_off(tmp_path):
    kept = prepare_preferences(upstream("ultrafeedback_fg", tmp_path, "dataset.drop_identical_pairs=false"), mirror=str(tmp_path))
    assert kept.report.dropped == {} and len(kept.dataset) == 3  # the script kept the identical pair


@pytest.mark.parametrize("name, options, skipped", [
    # By hand from rows.jsonl: 2023 has one two-turn battle; 2024 one two-turn conversation and one with a null turn.
    ("chatbot_arena_2023", ["single_turn_only=true", "language=English"], {"tie": 2, "multi_turn": 1}),
    ("chatbot_arena_2024", ["single_turn_only=true", "drop_null_turns=true"], {"tie": 1, "multi_turn": 1, "null_turn": 1}),
])
def test_chatbot_arena_filters_are_options_counted_as_skips(tmp_path, name, options, skipped):
    cfg = upstream(name, tmp_path, *(f"dataset.converter_options.{o}" for o in options))
    assert prepare_preferences(cfg, mirror=str(tmp_path)).report.skipped == skipped
