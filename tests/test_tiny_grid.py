"""The tiny grid end to end: `python -m harness -m +sweep=tiny_all` then `python -m harness.report --model tiny` fills
every cell of Tables 1-5 and Figures 1 and 3, each from the run whose axes its row names (sweeps/tiny_all.yaml)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from conftest import ROOT, compose


def test_model_tiny_plays_paper_entries_by_stand_ins_under_their_names():
    """One switch: scale=tiny swaps the paper's data, prompts, reward models and suites for bundled stand-ins, while
    the run keeps the paper's axis values; a paper model composes the paper's entries untouched."""
    tiny = compose("scale=tiny", "dataset=prm800k", "algorithm=ppo", "reward_model=uf_70b", "prompts=gsm8k", "eval=bon")
    assert (tiny.dataset.name, tiny.dataset.source) == ("prm800k", "files")
    assert tiny.dataset.files.train == "tiny/grid/prm800k_train.jsonl"
    assert (tiny.prompts.name, tiny.prompts.source) == ("gsm8k", "files")
    assert (tiny.reward_model.name, tiny.reward_model.base_model) == ("uf_70b", "tulu2_70b_tiny")
    assert tiny.eval.suite == "bon" and tiny.eval.benchmarks.gsm8k.files.test == "benchmarks/gsm8k/test.jsonl"
    paper = compose("model=tulu2_13b", "dataset=prm800k", "algorithm=ppo", "reward_model=uf_70b", "prompts=gsm8k", "eval=bon")
    assert (paper.dataset.source, paper.prompts.source) == ("tulu25", "tulu25")
    assert paper.reward_model.base_model == "tulu2_70b" and paper.eval.benchmarks.gsm8k.files is None


SPECIALISATIONS = {"dataset_scale": "dataset", "prompts_scale": "prompts", "rm_scale": "reward_model", "eval_scale": "eval"}


@pytest.mark.parametrize("group,axis", SPECIALISATIONS.items())
def test_every_stand_in_names_an_existing_entry_and_model(group, axis):
    """A misspelt specialisation would never be composed (Hydra's `optional`): each must be <entry>_<scale>."""
    from harness.config.groups import options

    names = options(group)
    assert names
    for name in names:
        assert any(name == f"{e}_{s}" for e in options(axis) for s in options("scale")), (group, name)


def test_stand_in_data_is_bundled_distinct_per_source_and_reproducible():
    from harness.data.preferences import load_preferences
    from harness.tiny import standins

    assert all((standins.GRID_DIR / name).read_text() == text for name, text in standins.files().items())
    firsts = {}
    for source in standins.SOURCES:
        cfg = compose("scale=tiny", f"dataset={source}").dataset
        rows = load_preferences(cfg)
        assert len(rows) == standins.TRAIN_PAIRS and set(rows["source"]) == {source}
        firsts[source] = tuple(rows["prompt"][i][0]["content"] for i in range(5))
    assert len(set(firsts.values())) == len(firsts)  # no two sources share their pairs


def test_the_report_reads_a_named_model_from_its_stand_in_in_the_tiny_grid_only():
    from harness.report import grid

    assert grid.played_by("llama2_13b", "tiny") == "llama2_13b_tiny"
    assert grid.played_by("llama2_13b", "tulu2_13b") == "llama2_13b"  # the paper's grid: the real model
    base = {"dataset": "none", "algorithm": "none", "reward_model": "none", "prompts": "none", "eval_suite": "tiny_grid"}
    assert grid.memberships(base | {"model": "vicuna_13b_tiny"}) == ["table5"]
    assert grid.memberships(base | {"model": "llama2_13b_tiny"}) == ["table1", "table5"]


def test_reward_model_data_follows_the_run_scale():
    """A reward model names its data by entry: a tiny run trains it on the entry's stand-in, a paper run on the hub."""
    from harness.train import reward

    tiny = reward.plan(compose("scale=tiny", "algorithm=ppo", "reward_model=mix_13b"), load=False)
    assert (tiny.dataset.name, tiny.dataset.source) == ("mix", "files")
    paper = reward.plan(compose("model=tulu2_13b", "algorithm=ppo", "reward_model=mix_13b"), load=False)
    assert (paper.dataset.name, paper.dataset.source) == ("mix", "tulu25")


# Cells whose runs the test names by hand: (table, row label, column or None for all) -> axes of every run behind it.
EXPECTED = {
    ("table1", "Llama 2 base", None): {"model": "llama2_13b_tiny", "algorithm": "none", "eval_suite": "tiny_grid"},
    ("table1", "PRM800k", None): {"model": "tiny", "algorithm": "dpo", "dataset": "prm800k", "eval_suite": "tiny_grid"},
    ("table2", "Nectar / PPO", None): {"algorithm": "ppo", "dataset": "nectar_60k", "reward_model": "none"},
    ("table3", "70B Mix RM", "rewardbench_score"): {"algorithm": "none", "reward_model": "mix_70b",
                                                   "eval_suite": "rewardbench"},
    ("table3", "13B UltraF. RM", "best_of_n_avg"): {"algorithm": "best_of_n", "reward_model": "uf_13b", "eval_suite": "bon"},
    ("table3", "13B Mix RM", "ppo_gsm_acc"): {"algorithm": "ppo", "reward_model": "mix_13b", "prompts": "uf"},
    ("table4", "70B Mix / Mixed", None): {"algorithm": "ppo", "reward_model": "mix_70b", "prompts": "mixed"},
    ("table5", "Vicuna 1.5 13B", None): {"model": "vicuna_13b_tiny", "algorithm": "none"},
    ("figure1", "+ mixed prompts", None): {"model": "tiny", "algorithm": "ppo", "reward_model": "uf_70b", "prompts": "mixed"},
    ("figure3", "GSM8k", "uf_70b"): {"algorithm": "ppo", "reward_model": "uf_70b", "prompts": "gsm8k"},
}


@pytest.mark.slow
def test_tiny_all_sweep_fills_every_cell_of_every_table_and_figure(tmp_path, shared_stages, tiny_base):
    from harness.report import grid
    from harness.report.__main__ import main

    sweep = subprocess.run([sys.executable, "-m", "harness", "-m", "+sweep=tiny_all", f"paths.home={tmp_path}",
                            f"paths.stages={shared_stages}", "tracking=none", f"hydra.sweep.dir={tmp_path}/sweep"],
                           cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert {r["state"] for r in summary["runs"]} == {"complete"}, [r for r in summary["runs"] if r["state"] != "complete"]
    sweep_runs = {r["run_id"] for r in summary["runs"]}

    out = tmp_path / "reports"
    assert main(["--results", str(tmp_path / "results"), "--out", str(out), "--model", "tiny"]) == 0
    for table in (*grid.TABLES, *grid.FIGURES):
        rows = list(csv.DictReader(open(out / f"{table.name}.csv")))
        assert len(rows) == len(table.rows), table.name
        for row in rows:
            for column in table.columns:
                assert row[column.key] != "missing", (table.name, row)
        behind = list(csv.DictReader(open(out / f"{table.name}_runs.csv")))
        assert {b["run_id"] for b in behind} <= sweep_runs, table.name  # every cell from a run of this sweep
        assert {(b["row"], b["column"]) for b in behind} == {(" / ".join(k for k in r.key if k), c.key)
                                                             for r in table.rows for c in table.columns}
        for (name, label, column), axes in EXPECTED.items():
            if name == table.name:
                cell = [b for b in behind if b["row"] == label and column in (None, b["column"])]
                assert cell and all({k: b[k] for k in axes} == axes for b in cell), (name, label, column, cell)
    table1 = {r["source"]: r for r in csv.DictReader(open(out / "table1.csv"))}
    assert table1["UltraF. (fine-grained)"]["average_paper"] != "n/a"  # beside the paper's number
    # each source's row comes from a policy of its own (the tiny model's scores may tie: the runs may not)
    behind = list(csv.DictReader(open(out / "table1_runs.csv")))
    dpo_rows = {b["row"]: b["run_id"] for b in behind if b["algorithm"] == "dpo"}
    assert len(dpo_rows) == len(set(dpo_rows.values())) >= len(grid.TABLE1_DATASETS), dpo_rows
    for figure in grid.FIGURES:
        assert (out / f"{figure.name}.png").stat().st_size > 0

    # The 70B reward models' stand-ins are larger than the 13B's (they start from conf/model/tulu2_70b_tiny.yaml).
    sizes = {}
    for run_id in sweep_runs:
        result = json.loads((tmp_path / "results" / "runs" / run_id / "result.json").read_text())
        rm = result["stages"].get("reward_model")
        if rm and result["axes"]["reward_model"] != "none":
            config = json.loads(open(f"{rm['dir']}/model/config.json").read())
            sizes[result["axes"]["reward_model"]] = config["hidden_size"]
    assert sizes == {"uf_13b": 96, "mix_13b": 96, "uf_70b": 128, "mix_70b": 128}
