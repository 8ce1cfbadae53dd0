"""Loading preference data: the released tulu-2.5 layout, validation counts, subsampling, mixtures, caching, and
offline behaviour with and without a mirror."""

from __future__ import annotations

import pytest
from conftest import compose
from test_data_support import FIXTURES, mirror_rows, released_source, tulu_pair

from harness.data import mixture
from harness.data.mirror import MirrorMissing
from harness.data.preferences import hub_sources, prepare_preferences
from harness.data.validate import DataError


def released(name: str, mirror, *overrides: str):
    return compose(f"dataset={name}", f"paths.mirror={mirror}", *overrides).dataset


def test_released_split_loads_validates_and_counts_bad_rows_by_reason(tmp_path):
    cfg = released("hh_rlhf", tmp_path, "dataset.max_bad_fraction=0.5")
    mirror_rows(tmp_path, hub_sources(cfg)[0], FIXTURES / "tulu25" / "hh_rlhf.jsonl")
    prepared = prepare_preferences(cfg, mirror=str(tmp_path))
    # Hand count of tulu25/hh_rlhf.jsonl: rows 4 (empty reply), 5 (identical), 6 (ends with a user turn),
    # 7 (rejected missing) and 8 (message without content) are bad; the other 6 are kept.
    assert prepared.report.dropped == {"empty_message": 1, "identical_pair": 1, "not_ending_with_assistant": 1, "missing_field": 2}
    assert [b["index"] for b in prepared.report.first_bad] == [3, 4, 5, 6, 7]
    assert prepared.report.rows == len(prepared.dataset) == 6
    row = next(r for r in prepared.dataset if r["prompt"][0]["content"] == "Hi")
    assert [m["content"] for m in row["prompt"]] == ["Hi", "Hello! What can I do for you?", "Suggest a name for a cat."]
    assert row["chosen"] == [{"role": "assistant", "content": "How about Miso?"}]
    assert row["source"] == "hh-rlhf" and len(row["id"]) == 16
    metrics = prepared.report.metrics()
    assert metrics["data_rows"] == 6 and metrics["data_dropped_over_length"] == 0 and metrics["data_dropped_missing_field"] == 2


def test_too_many_bad_rows_stop_with_the_dataset_and_first_bad_rows(tmp_path):
    cfg = compose(f"dataset.files.train={FIXTURES / 'mostly_bad.jsonl'}").dataset
    with pytest.raises(DataError) as err:
        prepare_preferences(cfg, cache=str(tmp_path))
    message = str(err.value)
    assert "dataset 'tiny': 4 of 5 pairs are invalid" in message and "max_bad_fraction=0.1" in message
    assert "row 1: empty_message" in message and "row 4: missing_field" in message
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").glob("*/COMPLETE"))


def test_released_split_with_other_columns_names_expected_and_found(tmp_path):
    cfg = released("nectar", tmp_path)
    mirror_rows(tmp_path, hub_sources(cfg)[0], [{"prompt": "p", "answers": "a"}])
    with pytest.raises(DataError, match=r"expected \['chosen', 'rejected'\], found \['prompt', 'answers'\]"):
        prepare_preferences(cfg, mirror=str(tmp_path))


def _mirror_split(mirror, split: str, n: int, tag: str | None = None) -> None:
    rows = [tulu_pair(f"{tag or split} question {i}?", f"good {i}", f"bad {i}", source=tag or split) for i in range(n)]
    mirror_rows(mirror, released_source(split), rows)


def test_subsample_is_deterministic_per_seed_and_differs_across_seeds(tmp_path):
    _mirror_split(tmp_path, "nectar_60k", 40)
    ids = lambda seed: prepare_preferences(released("nectar_60k", tmp_path, "dataset.max_samples=10", f"dataset.seed={seed}"),
                                           mirror=str(tmp_path)).dataset["id"]  # noqa: E731
    first = list(ids(1))
    assert len(first) == 10 and len(set(first)) == 10
    assert first == list(ids(1))
    assert first != list(ids(2))


def test_mix_composition_adds_up_to_the_papers_259851_rows():
    cfg = compose("dataset=mix").dataset
    sizes = {part.dataset: part.max_samples or mixture.dataset_config(part.dataset).paper_rows for part in cfg.mixture}
    assert sizes == {"helpsteer": 9270, "prm800k": 6949, "hh_rlhf_60k": 60908, "nectar_60k": 60908,
                     "stack_exchange_60k": 60908, "ultrafeedback_fg": 60908}
    assert sum(sizes.values()) == cfg.paper_rows == 259851


def test_mix_built_from_components_has_their_rows_and_sizes(tmp_path):
    # Fixture splits of the components, each larger than the (shrunken) per-component max_samples where one is set.
    for split, n in {"helpsteer": 5, "prm800k_pairs_phase2": 4, "hh_rlhf_60k": 9, "nectar_60k": 9,
                     "stack_exchange_60k": 9, "ultrafeedback_mean_aspects": 9}.items():
        _mirror_split(tmp_path, split, n)
    cfg = released("mix", tmp_path, "dataset.source=mixture")
    for part in cfg.mixture:
        if part.max_samples is not None:
            part.max_samples = 3
    prepared = prepare_preferences(cfg, mirror=str(tmp_path), cache=str(tmp_path / "stages"))
    assert prepared.report.parts == {"helpsteer": 5, "prm800k": 4, "hh_rlhf_60k": 3, "nectar_60k": 3,
                                     "stack_exchange_60k": 3, "ultrafeedback_fg": 3}
    assert len(prepared.dataset) == 21
    by_source = {s: list(prepared.dataset["source"]).count(s) for s in set(prepared.dataset["source"])}
    assert by_source == {"helpsteer": 5, "prm800k_pairs_phase2": 4, "hh_rlhf_60k": 3, "nectar_60k": 3,
                         "stack_exchange_60k": 3, "ultrafeedback_mean_aspects": 3}
    assert prepared.report.metrics()["data_rows_nectar_60k"] == 3


def test_mix_upstream_reads_every_components_upstream_set():
    sources = {s.hub_id for s in hub_sources(compose("dataset=mix", "dataset.source=upstream").dataset)}
    assert sources == {"nvidia/HelpSteer", "openai/prm800k", "Anthropic/hh-rlhf", "berkeley-nest/Nectar",
                       "lvwerra/stack-exchange-paired", "argilla/ultrafeedback-binarized-preferences-cleaned"}


def test_second_load_reads_the_cache_and_a_new_mirror_copy_invalidates_it(tmp_path, capsys):
    _mirror_split(tmp_path, "capybara", 6)
    cfg = released("capybara", tmp_path)
    first = prepare_preferences(cfg, mirror=str(tmp_path), cache=str(tmp_path / "stages"))
    second = prepare_preferences(cfg, mirror=str(tmp_path), cache=str(tmp_path / "stages"))
    assert "reusing data capybara/train" in capsys.readouterr().out
    assert second.key == first.key and list(second.dataset["id"]) == list(first.dataset["id"])
    _mirror_split(tmp_path, "capybara", 7)  # prefetched again: the checksum in the manifest changes
    third = prepare_preferences(cfg, mirror=str(tmp_path), cache=str(tmp_path / "stages"))
    assert third.key != first.key and len(third.dataset) == 7


def test_unpinned_hub_data_without_a_mirror_is_not_cached():
    from harness.data.preferences import cache_spec

    commit = "0123456789abcdef0123456789abcdef01234567"
    assert cache_spec(compose("dataset=hh_rlhf").dataset, "train", None) is not None  # pinned by default
    for unpinned in ("null", "main", "to-verify"):  # a branch or a pending pin is never cached as if pinned
        assert cache_spec(compose("dataset=hh_rlhf", f"dataset.revision={unpinned}").dataset, "train", None) is None
        assert cache_spec(compose("dataset=hh_rlhf", "dataset.source=upstream",
                                  f"dataset.upstream_revision={unpinned}").dataset, "train", None) is None
    assert cache_spec(compose("dataset=hh_rlhf", "dataset.source=upstream",
                              f"dataset.upstream_revision={commit}").dataset, "train", None) is not None


def test_offline_without_the_mirror_entry_names_the_prefetch_command(tmp_path):
    cfg = released("hh_rlhf", tmp_path, "dataset.source=upstream")
    with pytest.raises(MirrorMissing) as err:
        prepare_preferences(cfg, mirror=str(tmp_path))
    assert "Anthropic/hh-rlhf" in str(err.value)
    assert f"python -m harness.data prefetch dataset=hh_rlhf dataset.source=upstream paths.mirror={tmp_path}" in str(err.value)


def test_offline_without_any_mirror_names_the_prefetch_command():
    cfg = compose("dataset=orca", "dataset.revision=0123abcd").dataset  # a revision surely not in the local HF cache
    with pytest.raises(MirrorMissing, match=r"(?s)offline.*python -m harness.data prefetch dataset=orca paths.mirror=<dir>"):
        prepare_preferences(cfg)


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(DataError, match=r"unknown source 'hub'; valid: \['tulu25', 'upstream', 'files', 'mixture'\]"):
        prepare_preferences(compose("dataset=orca", "dataset.source=hub").dataset)


# protocol.md, "Preference data": the released split names of allenai/tulu-2.5-preference-data.
RELEASED_SPLITS = {"shp_2", "stack_exchange_paired", "stack_exchange_60k", "prm800k_pairs_phase2", "chatbot_arena_2023",
                   "chatbot_arena_2024", "alpaca_farm_human_pref", "alpaca_farm_gpt4_pref", "capybara", "hh_rlhf",
                   "hh_rlhf_60k", "helpsteer", "orca_dpo_pairs", "nectar", "nectar_60k", "ultrafeedback_overall",
                   "ultrafeedback_mean_aspects", "preference_big_mixture"}
CONTRACT = {"tiny", "shp2", "stack_exchange", "prm800k", "chatbot_arena_2023", "chatbot_arena_2024", "alpaca_farm_human",
            "alpaca_farm_gpt4", "hh_rlhf", "helpsteer", "capybara", "orca", "nectar", "ultrafeedback_overall",
            "ultrafeedback_fg", "stack_exchange_60k", "hh_rlhf_60k", "nectar_60k", "mix"}


def test_every_contract_dataset_defaults_to_a_released_split_and_has_an_upstream_route():
    from harness.config.groups import options
    from harness.data import converters

    assert set(options("dataset")) == CONTRACT
    for name in sorted(CONTRACT - {"tiny"}):
        cfg = compose(f"dataset={name}").dataset
        assert cfg.source == "tulu25" and cfg.split in RELEASED_SPLITS and cfg.revision, name
        assert cfg.mixture or (cfg.upstream_hub_id and cfg.converter in converters.CONVERTERS), name
    assert {compose(f"dataset={n}").dataset.split for n in CONTRACT - {"tiny"}} == RELEASED_SPLITS
