"""Prefetch: what a run or a sweep needs from the hub, written into a mirror that runs then read offline."""

from __future__ import annotations

import json

from conftest import compose
from datasets import Dataset
from test_data_support import FIXTURES, read_jsonl, released_source, tulu_pair

from harness.data import __main__ as cli
import pytest

from harness.data.mirror import SCRIPT_REPOS, HubSplit, read_manifest
from harness.data.prefetch import prefetch, run_sources, sweep_points
from harness.data.prefetch import hub_splits
from harness.data.preferences import prepare_preferences

# The upstream set is read as the conversion script did (seed 42, first 500k of the shuffle); the allow-list whole.
UF_OVERALL = HubSplit("HuggingFaceH4/ultrafeedback_binarized", None, "train_prefs", "to-verify", None, 42, 500000)
UF_FG = HubSplit("argilla/ultrafeedback-binarized-preferences-cleaned", None, "train", "to-verify")


def test_a_run_needs_its_data_prompts_reward_model_data_and_benchmarks():
    cfg = compose("dataset=ultrafeedback_overall", "dataset.source=upstream", "prompts=uf", "eval=paper",
                  "reward_model.dataset=helpsteer")
    sources = run_sources(cfg)
    assert sources[:4] == [
        UF_OVERALL, UF_FG,  # the upstream set and the converter's allow-list
        HubSplit("allenai/tulu-2.5-prompts", None, "ultrafeedback_prompts", "to-verify"),
        released_source("helpsteer"),  # the reward model's data
    ]
    benchmarks = sources[4:]  # eval=paper: every split its 11 benchmarks read
    assert HubSplit("openai/gsm8k", "main", "test", "to-verify") in benchmarks
    assert HubSplit("cais/mmlu", "abstract_algebra", "test", "to-verify") in benchmarks  # one per MMLU subject (0-shot: no dev)
    assert len([b for b in benchmarks if b.hub_id == "cais/mmlu"]) == 57
    assert len([b for b in benchmarks if b.hub_id == "SaylorTwift/bbh"]) == 27
    assert HubSplit("toxigen/toxigen-data", "prompts", "hate_asian_1k", "to-verify") in benchmarks  # one per ToxiGen group
    assert HubSplit("truthfulqa/truthful_qa", "multiple_choice", "validation", "to-verify") in benchmarks  # MC2's variant
    assert HubSplit("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline", "eval", "to-verify",
                    "hf://datasets/tatsu-lab/alpaca_eval@{revision}/alpaca_eval_gpt4_baseline.json") in benchmarks  # AE2 refs
    assert len(benchmarks) == len(set(benchmarks))


def test_bundled_data_needs_nothing_from_the_hub():
    assert run_sources(compose()) == []


def test_a_sweep_expands_to_the_runs_it_launches():
    points = sweep_points(["tiny"])  # sweeps/tiny.yaml: algorithm none,dpo x seed 1,2
    assert sorted(tuple(sorted(p)) for p in points) == sorted(
        tuple(sorted(["+sweep=tiny", f"algorithm={a}", f"seed={s}"])) for a in ("none", "dpo") for s in (1, 2))


def test_prefetch_writes_the_mirror_and_runs_then_read_it_offline(tmp_path):
    mirror = tmp_path / "mirror"
    files = {UF_OVERALL: FIXTURES / "ultrafeedback_overall" / "rows.jsonl", UF_FG: FIXTURES / "ultrafeedback_fg" / "rows.jsonl"}
    fetched = []

    def fetch(source):  # stands in for the hub download: the same rows the hub would serve
        fetched.append(source)
        return Dataset.from_list(read_jsonl(files[source]))

    cfg = compose("dataset=ultrafeedback_overall", "dataset.source=upstream", f"paths.mirror={mirror}")
    done = prefetch(run_sources(cfg), str(mirror), fetch)
    assert [d["status"] for d in done] == ["fetched", "fetched"] and fetched == [UF_OVERALL, UF_FG]
    manifest = {e["hub_id"]: e for e in read_manifest(mirror)}
    assert manifest[UF_OVERALL.hub_id]["rows"] == 3 and manifest[UF_FG.hub_id]["rows"] == 3
    assert len(manifest[UF_OVERALL.hub_id]["sha256"]) == 64
    assert [d["status"] for d in prefetch(run_sources(cfg), str(mirror), fetch)] == ["present", "present"]
    assert len(fetched) == 2  # nothing downloaded twice
    rows = prepare_preferences(cfg.dataset, mirror=str(mirror)).dataset  # HF_HUB_OFFLINE is set for every test
    assert len(rows) == 2


def test_cli_prefetch_of_a_sweep_reports_what_the_mirror_holds(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    points = sweep_points(["table1"])
    sources = list(dict.fromkeys(s for p in points for s in run_sources(compose(*p))))
    # the mirror already holds every split (as a connected machine's prefetch would have written it)
    prefetch(sources, str(mirror), lambda s: Dataset.from_list([tulu_pair("q", "a", "b")]))
    assert cli.main(["prefetch", "--sweep", "table1", f"paths.mirror={mirror}"]) == 0
    out = capsys.readouterr().out
    assert f"{len(points)} run configuration(s) read {len(sources)} hub split(s)" in out
    assert out.count("present") == len(sources) and "fetched" not in out
    assert {f"split {d}" for d in ("shp_2", "nectar", "ultrafeedback_mean_aspects")} <= {
        f"split {s.split}" for s in sources}  # Table 1's datasets are among them


def test_cli_prefetch_without_a_mirror_says_how_to_set_one(monkeypatch, capsys):
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    assert cli.main(["prefetch", "dataset=hh_rlhf"]) == 2
    assert "paths.mirror=<dir>" in capsys.readouterr().err


def test_manifest_lists_each_entry_once_after_a_refetch(tmp_path):
    source = HubSplit("allenai/tulu-2.5-preference-data", None, "capybara", None)
    for n in (2, 3):
        prefetch([source], str(tmp_path), lambda s: Dataset.from_list([tulu_pair(f"q{i}", "a", "b") for i in range(n)]), force=True)
    entries = read_manifest(tmp_path)
    assert len(entries) == 1 and entries[0]["rows"] == 3
    assert json.loads((tmp_path / "manifest.json").read_text()) == entries


def test_reward_model_evaluation_needs_rewardbench_and_its_prior_sets():
    sources = run_sources(compose("algorithm=none", "reward_model=uf_13b", "eval=rewardbench"))
    assert HubSplit("allenai/reward-bench", None, "filtered", "to-verify") in sources
    assert {s.split for s in sources if s.hub_id == "allenai/preference-test-sets"} == {
        "anthropic_helpful", "anthropic_hhh", "shp", "summarize"}


def test_prefetch_of_every_sweep_plans_only_loadable_sources_with_revisions():
    """`python -m harness.data prefetch --sweep all`: no loading-script repo read by id (datasets 4+ refuses them),
    and every benchmark source names its revision (a branch is allowed, with a warning; see the benchmark YAMLs)."""
    points = sweep_points(["all"])
    sources = list(dict.fromkeys(s for p in points for s in run_sources(compose(*p))))
    assert not [s for s in sources if s.hub_id in SCRIPT_REPOS and not s.data_files]
    benchmarks = {s for p in points[:1] for b in compose(*p).eval.benchmarks.values() for s in hub_splits(b)}
    assert len(benchmarks) > 100 and not [s for s in benchmarks if not s.revision]
    assert {s.hub_id for s in benchmarks} >= {"SaylorTwift/bbh", "tatsu-lab/alpaca_eval", "evalplus/mbppplus"}
    # AlpacaEval's two configs come from the repo's JSON files, at the pinned revision
    assert {s.data_files.rsplit("/", 1)[1] for s in benchmarks if s.hub_id == "tatsu-lab/alpaca_eval"} == {
        "alpaca_eval.json", "alpaca_eval_gpt4_baseline.json"}


@pytest.mark.parametrize("override, message", [
    ("eval.benchmarks.bbh.hub_id=lukaemon/bbh", r"loading-script dataset, which datasets 4\+ refuses; use hub_id SaylorTwift/bbh"),
    ("eval.benchmarks.alpaca_eval1.data_files=null", "tatsu-lab/alpaca_eval is a loading-script dataset"),
    ("eval.benchmarks.gsm8k.revision=null", "'gsm8k_8shot_cot_200'.*no `revision`; set revision: <commit>"),
])
def test_a_benchmark_source_that_cannot_load_is_refused_before_anything_runs(override, message):
    from harness.checks import check
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        check(compose("eval=paper", override))
    with pytest.raises(ValueError, match=message):
        run_sources(compose("eval=paper", override))
