"""`python -m harness.data verify` on a local mirror built from fixtures, with a fixture hub standing in for the
network (commits and file listings): a passing source, and a failing case of each kind (revision, loading script,
columns, rows against Table 1, HelpSteer direction)."""

from __future__ import annotations

import json

from conftest import compose
from test_data_support import FIXTURES, mirror_rows, read_jsonl, tulu_pair

from harness.data import prompts
from harness.data.preferences import hub_sources, upstream_split
from harness.data.verify import table, verify, write

MAIN = {"allenai/tulu-2.5-preference-data": "6e87e7ba11eeb2a21db459cf13267f62d1feea23",
        "allenai/tulu-2.5-prompts": "a" * 40, "nvidia/HelpSteer": "b" * 40,
        "argilla/distilabel-capybara-dpo-7k-binarized": "c" * 40}
UNKNOWN = "f" * 40


class FixtureHub:
    """The hub as verify sees it: the commit each repo's main resolves to, and its files (capybara's repo has a
    loading script)."""

    def resolve(self, hub_id, revision):
        main = MAIN[hub_id]
        if revision not in (None, main):
            raise ValueError(f"{hub_id}: revision {revision} not found")
        return main

    def resolve_model(self, model_id, revision):
        if model_id != "allenai/truthfulqa-truth-judge-llama2-7B":
            raise ValueError(f"{model_id}: repository not found")
        return "e" * 40

    def files(self, hub_id, commit):
        return ["README.md", "data/train.parquet"] + (["distilabel-capybara.py"] if "capybara" in hub_id else [])


def _configs():
    return [compose("dataset=helpsteer", "dataset.released_rows=2", "prompts=uf"),
            compose("dataset=helpsteer", "dataset.source=upstream", "dataset.paper_rows=2", "dataset.label=x"),
            compose("dataset=capybara", "dataset.source=upstream", "dataset.max_bad_fraction=1.0"),
            compose("dataset=orca", f"dataset.revision={UNKNOWN}")]


def _mirror(mirror, helpsteer_chosen: str) -> None:
    """The fixture mirror: the released helpsteer split built with `helpsteer_chosen` (from the converter's expected
    pairs for the script's default, `lowest`), nvidia/HelpSteer, prompts with the wrong columns, capybara, orca."""
    cfgs = [c.dataset for c in _configs()]
    pairs = [(r["prompt"][0]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"])
             for r in read_jsonl(FIXTURES / "helpsteer" / "expected.jsonl")]
    released = [tulu_pair(p, c, r) if helpsteer_chosen == "lowest" else tulu_pair(p, r, c) for p, c, r in pairs]
    mirror_rows(mirror, hub_sources(cfgs[0])[0], released)
    mirror_rows(mirror, upstream_split(cfgs[1]), FIXTURES / "helpsteer" / "rows.jsonl")
    mirror_rows(mirror, prompts.hub_sources(compose("prompts=uf").prompts)[0], [{"text": "no prompt column"}])
    mirror_rows(mirror, upstream_split(cfgs[2]), FIXTURES / "capybara" / "rows.jsonl")
    mirror_rows(mirror, hub_sources(cfgs[3])[0], [tulu_pair("q", "a", "b")])


def test_verify_reports_each_failure_kind_and_writes_verify_json(tmp_path, capsys):
    _mirror(tmp_path, "lowest")
    report = verify(_configs(), FixtureHub(), str(tmp_path))
    rows = {r["source"].split(" [")[0] + " " + r["used_by"]: r for r in report["sources"]}
    released = rows["allenai/tulu-2.5-preference-data dataset=helpsteer"]
    assert (released["revision"], released["script"], released["columns"], released["rows"]) == ("ok", "ok", "ok", "ok")
    upstream = rows["nvidia/HelpSteer dataset=helpsteer (upstream)"]
    assert upstream["revision"] == f"pin {'b' * 40}" and upstream["rows"] == "ok"  # to-verify: main's commit to pin
    assert rows["allenai/tulu-2.5-prompts prompts=uf"]["columns"] == "FAIL"
    capybara = rows["argilla/distilabel-capybara-dpo-7k-binarized dataset=capybara (upstream)"]
    assert capybara["script"] == "FAIL" and capybara["rows"] == "FAIL"
    assert any("expected 7563" in n for n in capybara["notes"])  # Table 1's Capybara 7k
    orca = rows["allenai/tulu-2.5-preference-data dataset=orca"]
    assert orca["revision"] == "FAIL" and orca["rows"] == "FAIL" and any("expected 12859" in n for n in orca["notes"])
    assert report["helpsteer"]["status"] == "ok" and report["helpsteer"]["released_direction"] == "lowest"
    assert report["helpsteer"]["chosen_lower"] == 2
    assert report["failures"] == 3  # prompts, capybara, orca
    path = write(report, str(tmp_path), None)
    assert path == tmp_path / "verify.json" and json.loads(path.read_text()) == report
    printed = table(report)
    assert printed.splitlines()[0].split() == ["source", "used", "by", "revision", "script", "columns", "rows", "notes"]
    assert "HelpSteer direction: ok" in printed and "3 failure(s)" in printed


def test_verify_counts_chatbot_arena_pairs_under_each_candidate_filter(tmp_path):
    cfg = compose("dataset=chatbot_arena_2024", "dataset.source=upstream", "dataset.max_bad_fraction=1.0")
    mirror_rows(tmp_path, upstream_split(cfg.dataset), FIXTURES / "chatbot_arena_2024" / "rows.jsonl")

    class Hub(FixtureHub):
        def resolve(self, hub_id, revision):
            return "d" * 40

    [row] = verify([cfg], Hub(), str(tmp_path))["sources"]
    # By hand from rows.jsonl (5 rows: a tie, a two-turn win, a null turn, an unparseable one, a one-turn win): 2 pairs
    # kept by default (the null turn is dropped in validation), 1 single-turn only, 2 with null turns skipped.
    assert row["rows"] == "FAIL" and "rows: 2, expected 34269" in row["notes"]
    assert "with single_turn_only: 1 pairs" in row["notes"] and "with drop_null_turns: 2 pairs" in row["notes"]


def test_verify_checks_judge_models_by_id():
    cfg = compose("eval=paper")
    cfg.eval.benchmarks = {"truthfulqa": cfg.eval.benchmarks.truthfulqa}  # its two hf judges (hub ids)
    report = verify([cfg], FixtureHub(), None)
    judges = {r["used_by"]: r["revision"] for r in report["sources"] if r["source"].startswith("model ")}
    assert judges == {"eval truthfulqa judge truth": "pin " + "e" * 40, "eval truthfulqa judge info": "FAIL"}


def test_verify_fails_a_released_helpsteer_built_the_other_way(tmp_path):
    _mirror(tmp_path, "highest")
    report = verify(_configs()[:2], FixtureHub(), str(tmp_path))
    assert report["helpsteer"]["status"] == "FAIL"
    assert report["helpsteer"]["released_direction"] == "highest" and report["helpsteer"]["configured"] == "lowest"
    assert report["failures"] == 2  # the direction, and (as above) the prompts' columns


def test_cli_verify_prints_the_table_writes_verify_json_beside_the_mirror_and_exits_1_on_failure(tmp_path, monkeypatch, capsys):
    from harness.data import __main__ as cli
    from harness.data import verify as verify_module

    _mirror(tmp_path, "lowest")
    monkeypatch.setattr(verify_module, "HfHubInfo", lambda token: FixtureHub())
    assert cli.main(["verify", "dataset=orca", f"dataset.revision={UNKNOWN}", f"paths.mirror={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert "orca_dpo_pairs@ffffffffffff" in out and "1 failure(s)" in out
    assert json.loads((tmp_path / "verify.json").read_text())["failures"] == 1
