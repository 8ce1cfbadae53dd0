"""Reports: the paper's tables regenerated from runs whose scores are the paper's own numbers, beside the paper.

The runs here are synthetic results (the paper's category scores as *input*), written through the real results index
and a real MLflow store; tests/test_browser_mlflow.py makes real runs.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.report import generate, grid, render
from harness.report.__main__ import main
from harness.report.build import PAPER_DIR, build, paper_rows, paper_value
from harness.report.runs import RunRecord, read_disk, read_mlflow
from harness.records.results import index_row, upsert_index
from harness.config.schema import CATEGORIES
from harness.records.stages import digest
from harness.records.tracking import Tracker

MODEL, SUITE = grid.PAPER_MODEL, "paper"
DATE = "2026-11-01T12:00:00+0000"


# ------------------------------------------------------------------------------------------------- synthetic runs
def resolve(select: dict) -> dict:
    """The axes of a run a selector matches (the report's model and suite by default, "none" for the rest)."""
    resolved, select = {grid.BASE: MODEL, grid.MAIN: SUITE}, grid.DEFAULTS | select
    return {a: resolved.get(select.get(a, "none"), select.get(a, "none")) for a in grid.AXES}


def record(axes: dict, metrics: dict, seed: int = 42, recorded_at: str = DATE) -> RunRecord:
    config_hash = digest([axes, seed], 16)
    run_id = "-".join(axes[a] for a in grid.AXES) + f"-s{seed}-{config_hash[:8]}"
    return RunRecord(run_id, axes, metrics, config_hash, recorded_at, "0123abcd", seed)


def paper_runs() -> list[RunRecord]:
    """One run per distinct selector of the grid, its metrics the paper's numbers for every cell it fills.

    A run filling cells of several tables must get the same number from each (the paper is consistent, and so must
    the grid be): the SFT run's coding score is Table 1's and Table 4's, the 13B UF RM PPO run's Average is in
    Tables 2, 3, 4 and 5.
    """
    runs: dict[tuple, dict] = {}
    for table in (*grid.TABLES, *grid.FIGURES):
        for r in table.rows:
            for col in table.columns:
                terms, paper = grid.cell_terms(r, col), paper_value(table, r, col.key)
                if len(terms) != 1 or paper is None:
                    continue
                axes = resolve(terms[0].select)
                metric = "category/reasoning" if col.metric == grid.CATEGORIES_MEAN else col.metric
                metrics = runs.setdefault(tuple(axes.values()), {})
                assert metrics.setdefault(metric, paper) == paper, (table.name, r.key, col.key, metrics[metric], paper)
    # The SFT model on the best-of-N subset: Table 3 prints best-of-N's gain over it, not the number itself.
    t3 = paper_rows("table3").values()
    sft_bon = sum(float(r["best_of_n_avg"]) - float(r["best_of_n_delta_over_sft"]) for r in t3) / len(t3)
    runs[tuple(resolve({"algorithm": "none", "eval_suite": "bon"}).values())] = {"category/reasoning": sft_bon}
    return [record(dict(zip(grid.AXES, key)), metrics) for key, metrics in runs.items()]


RUNS = paper_runs()


def find(**axes) -> RunRecord:
    return next(r for r in RUNS if all(r.axes[k] == v for k, v in axes.items()))


def built(runs: list[RunRecord]) -> dict[str, dict[tuple, dict[str, str]]]:
    """table name -> {(row key, column): the CSV fields of that cell}."""
    out = {}
    for table in (*grid.TABLES, *grid.FIGURES):
        result = build(table, runs, MODEL, SUITE)
        out[table.name] = {(r.key, key): render.cell_fields(key, cell) for r, key, cell in result.cells()}
    return out


# ------------------------------------------------------------------------------------------------- the grid
def test_grid_rows_are_the_papers_rows():
    for table in grid.TABLES:
        assert [r.key for r in table.rows] == list(paper_rows(table.name)), table.name
        header = next(csv.reader(open(PAPER_DIR / table.paper_csv)))
        assert [c.key for c in table.columns] == [h for h in header if h not in (*table.key_columns, *table.info_columns)]


def test_table_tags_name_every_table_a_run_fills():
    sft = resolve({"algorithm": "none"})
    assert grid.table_tags(sft) == {"table": "1", "table_1": "1", "table_4": "1", "table_5": "1", "figure_1": "1"}
    ppo_uf = resolve(grid.ppo("uf_13b"))
    assert grid.table_tags(ppo_uf) == {"table": "2", "table_2": "1", "table_3": "1", "table_4": "1", "table_5": "1",
                                       "figure_1": "1"}  # 60K UF prompts: Figure 3 trains on 20K (uf_20k)
    assert grid.table_tags(resolve(grid.ppo("uf_13b", "uf_20k"))) == {"figure_3": "1"}  # `table` names tables only
    assert grid.table_tags(resolve({"algorithm": "ppo", "dataset": "nectar_60k", "prompts": "from_dataset"})) == \
        {"table": "2", "table_2": "1"}
    # the SFT model on the best-of-N subset is Table 3's baseline, not Table 1's SFT row
    assert grid.table_tags(resolve({"algorithm": "none", "eval_suite": "bon"})) == {"table": "3", "table_3": "1"}
    # a tiny run fills the tiny grid's cells; a dataset outside the paper fills none
    assert grid.table_tags({**sft, "model": "tiny", "eval_suite": "tiny"})["table"] == "1"
    assert grid.table_tags(resolve({"algorithm": "dpo", "dataset": "tiny"})) == {}


# ------------------------------------------------------------------------------------------------- tables
def test_rendered_cells_show_the_value_the_paper_and_the_difference():
    """How cells render (which run a row means is tests/test_report_truth.py's, checked against a hand-written truth)."""
    tables = built(RUNS)
    for table in grid.TABLES:
        for (key, col), f in tables[table.name].items():
            if f[f"{col}_paper"] == render.NOT_IN_PAPER:  # Llama 2 base has no instruction following, no Average
                assert f[col] == render.MISSING and f[f"{col}_n"] == "0", (table.name, key, col)
    t2_delta = tables["table2"][(("Avg. delta PPO - DPO", ""), "reasoning")]
    assert (t2_delta["reasoning"], t2_delta["reasoning_n"]) == ("+1.3", "10")
    # Figure 1 shows Table 4's GSM8k and Table 5's Average beside the reproduced ones
    fig1 = tables["figure1"]
    assert fig1[(("+ 70B UF RM",), "gsm_acc")] == {"gsm_acc": "58.0", "gsm_acc_n": "1", "gsm_acc_paper": "58.0",
                                                  "gsm_acc_diff": "+0.0", "gsm_acc_lo": "n/a", "gsm_acc_hi": "n/a",
                                                  "gsm_acc_outside": "n/a"}  # synthetic runs: no item scores
    assert fig1[(("+ DPO (UF)",), "gsm_acc")]["gsm_acc_paper"] == render.NOT_IN_PAPER


def changed_cells(before: dict, after: dict) -> set[tuple]:
    return {(name, key, col) for name in before for (key, col), f in before[name].items() if after[name][(key, col)] != f}


def test_removing_a_run_marks_exactly_its_cells_missing():
    before = built(RUNS)
    arena = find(algorithm="dpo", dataset="chatbot_arena_2023")
    after = built([r for r in RUNS if r is not arena])
    cats = [*CATEGORIES, "average"]
    expected = ({("table1", ("Chatbot Arena (2023)",), c) for c in cats}
                | {("table2", ("ChatArena (2023)", "DPO"), c) for c in cats}
                | {("table2", ("Avg. delta PPO - DPO", ""), c) for c in cats})
    assert changed_cells(before, after) == expected
    assert all(after[t][(k, c)][c] == render.MISSING and after[t][(k, c)][f"{c}_n"] == "0" for t, k, c in expected)

    ppo = find(algorithm="ppo", reward_model="uf_13b", prompts="uf")
    after = built([r for r in RUNS if r is not ppo])
    assert changed_cells(before, after) == (
        {("table2", ("UltraFeedback (FG)", "PPO"), c) for c in cats}
        | {("table2", ("Avg. delta PPO - DPO", ""), c) for c in cats}
        | {("table3", ("13B UltraF. RM",), c) for c in ("ppo_gsm_acc", "ppo_alpacaeval2_winrate", "ppo_avg_all_evals")}
        | {("table4", ("13B UltraF.", "UF"), c) for c in ("gsm_acc", "coding", "avg_all_evals")}
        | {("table5", ("Tulu 2+PPO 13B (13B UFRM)",), c) for c in cats}
        | {("figure1", ("PPO (13B UF RM)",), c) for c in ("gsm_acc", "average")})


def test_several_runs_in_a_cell_show_mean_and_count_and_all_runs_in_the_csv(tmp_path):
    sft = find(model=MODEL, algorithm="none", eval_suite="paper")
    reseeded = record(sft.axes, {**sft.metrics, "category/coding": sft.metrics["category/coding"] + 3.0}, seed=7)
    other_model = record({**sft.axes, "model": "tulu2_7b"}, {"category/coding": 0.0})
    generate.generate([*RUNS, reseeded, other_model], tmp_path, MODEL, SUITE)
    rows = {r["source"]: r for r in csv.DictReader(open(tmp_path / "table1.csv"))}
    assert (rows["Tulu 2 (SFT)"]["coding"], rows["Tulu 2 (SFT)"]["coding_n"]) == ("46.6", "2")  # (45.1 + 48.1) / 2
    assert rows["Tulu 2 (SFT)"]["coding_diff"] == "+1.5"
    assert "46.6 ×2 (45.1, +1.5)" in (tmp_path / "table1.md").read_text()
    behind = [r for r in csv.DictReader(open(tmp_path / "table1_runs.csv"))
              if r["row"] == "Tulu 2 (SFT)" and r["column"] == "coding"]
    assert sorted((r["seed"], float(r["value"])) for r in behind) == [("42", 45.1), ("7", pytest.approx(48.1))]
    assert {r["config_hash"] for r in behind} == {sft.config_hash, reseeded.config_hash}
    assert all(r["recorded_at"] == DATE and r["git_commit"] == "0123abcd" for r in behind)


def test_markdown_tables_parse_back_to_the_csv_values(tmp_path):
    sft = find(model=MODEL, algorithm="none", eval_suite="paper")
    runs = [r for r in RUNS if r.axes["dataset"] != "nectar"] + [record(sft.axes, sft.metrics, seed=1)]
    generate.generate(runs, tmp_path, MODEL, SUITE)
    for table in (*grid.TABLES, *grid.FIGURES):
        md = (tmp_path / f"{table.name}.md").read_text()
        rows = list(csv.DictReader(open(tmp_path / f"{table.name}.csv")))
        assert render.parse_markdown(md) == rows, table.name
        behind = list(csv.DictReader(open(tmp_path / f"{table.name}_runs.csv")))
        if not behind:  # Figure 3 has no run here (its 20K-prompt runs are not in the paper's tables)
            assert "No run fills a cell yet." in md, table.name
            continue
        footer = md.split("## Runs behind the cells")[1]
        for run in behind:
            assert f"| {run['run_id']} | {run['config_hash']} | {run['recorded_at']} | {run['git_commit']} |" in footer
    md = (tmp_path / "table1.md").read_text()
    assert "| Nectar | Synthetic | 180099 | missing (55.3) |" in md
    assert "| Tulu 2 (SFT) | - |  | 55.4 ×2 (55.4, +0.0) |" in md


def test_figures_are_written_and_drawn(tmp_path):
    from matplotlib.image import imread

    # Figure 3 is drawn from 20K-prompt PPO runs (no paper numbers): two of them here
    fig3_runs = [record(resolve(grid.ppo("uf_70b", "uf_20k")), {"eval/gsm8k": 58.0}),
                 record(resolve(grid.ppo("uf_70b", "mixed_20k")), {"eval/gsm8k": 56.5})]
    generate.generate([*RUNS, *fig3_runs], tmp_path, MODEL, SUITE)
    for name in ("figure1", "figure3"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = imread(png)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 600
        assert pixels[..., :3].std() > 0.05  # not a blank canvas
    fig3 = {r["prompts"]: r for r in csv.DictReader(open(tmp_path / "figure3.csv"))}
    assert (fig3["UltraFeedback"]["uf_70b"], fig3["Mixed"]["uf_70b"], fig3["Math"]["uf_13b"]) == ("58.0", "56.5", "missing")


# ------------------------------------------------------------------------------------------------- disk and MLflow
def result_of(run: RunRecord, results: Path) -> dict:
    """A synthetic run's record, shaped as harness.pipeline.record writes it."""
    scores = {k.removeprefix("eval/"): {"score": v} for k, v in run.metrics.items() if k.startswith("eval/")}
    return {"run_id": run.run_id, "config_hash": run.config_hash, "recorded_at": run.recorded_at, "axes": run.axes,
            "benchmarks": scores, "categories": {c: run.metrics.get(f"category/{c}") for c in CATEGORIES},
            "average": run.metrics.get("average"), "result_path": str(results / "runs" / run.run_id),
            "provenance": {"git_commit": run.git_commit, "seed": run.seed, "versions": {}, "chat_template": "tulu"}}


def write_disk(results: Path, runs: list[RunRecord]) -> None:
    for run in runs:
        upsert_index(results, index_row(result_of(run, results)))


def log_mlflow(tracking, run: RunRecord, lock_dir: Path, sweep: str | None = None) -> str:
    """Logged by the pipeline's own functions (harness.pipeline: the starting tags, then the record)."""
    from harness import pipeline

    tracker = Tracker(tracking)
    tracker.start(run.run_id, params={"seed": run.seed},
                  tags=pipeline.tracking_tags(run.axes, run.config_hash, run.seed, run.run_id, sweep), sweep=sweep,
                  lock_dir=str(lock_dir))
    tracker.log_result(result_of(run, lock_dir))
    tracker.end()
    assert tracker.active, "MLflow logging failed"
    return tracker.run_id


@pytest.fixture(scope="module")
def paper_store(tmp_path_factory):
    """The paper's runs in a results index and in a SQLite MLflow store (as a sweep), plus an older duplicate of one run
    and a failed run in MLflow only."""
    results = tmp_path_factory.mktemp("paper") / "results"
    tracking = OmegaConf.create({"backend": "mlflow", "uri": f"sqlite:///{results}/mlflow.db", "experiment": "harness",
                                 "timeout_s": 10})
    write_disk(results, RUNS)
    sft = find(model=MODEL, algorithm="none", eval_suite="paper")
    log_mlflow(tracking, record(sft.axes, {"category/coding": 1.0}, recorded_at="2026-10-01T00:00:00+0000"), results)
    for run in RUNS:
        log_mlflow(tracking, run, results, sweep="paper-grid")
    failed = Tracker(tracking)
    failed.start("failed-run", params={}, tags={"run_id": "failed-run"})
    failed.end("FAILED")
    return results, tracking


def test_disk_and_mlflow_sources_give_identical_reports(paper_store, tmp_path):
    results, tracking = paper_store
    assert read_mlflow(tracking.uri, tracking.experiment) == read_disk(results)
    assert main(["--results", str(results), "--out", str(tmp_path / "disk")]) == 0
    assert main(["--source", "mlflow", "--results", str(results), "--out", str(tmp_path / "mlflow")]) == 0
    files = sorted(p.name for p in (tmp_path / "disk").iterdir())
    assert len(files) == 5 * 4 + 2 * 5 and files == sorted(p.name for p in (tmp_path / "mlflow").iterdir())
    for name in files:
        assert (tmp_path / "disk" / name).read_bytes() == (tmp_path / "mlflow" / name).read_bytes(), name


def test_mlflow_table_tags_filter_each_tables_runs(paper_store):
    from mlflow.tracking import MlflowClient

    _, tracking = paper_store
    client = MlflowClient(tracking.uri)
    exp = client.get_experiment_by_name(tracking.experiment).experiment_id

    def run_ids(query: str) -> set[str]:
        return {r.data.tags["run_id"] for r in client.search_runs([exp], query, max_results=1000)}

    # Table 1: Llama 2 base, SFT and the 14 DPO datasets
    assert len(run_ids("tags.table = '1'")) == 16
    assert run_ids("tags.table = '1'") == run_ids("tags.table_1 = '1'")
    # Table 2: 5 DPO + 5 PPO runs; ChatArena 2023 and UF-FG DPO are Table 1's runs too, so their `table` is "1"
    assert len(run_ids("tags.table_2 = '1'")) == 10 and len(run_ids("tags.table = '2'")) == 8
    # Table 3: 4 RewardBench, 4 best-of-N, the SFT best-of-N baseline, 4 PPO runs
    assert len(run_ids("tags.table_3 = '1'")) == 13


def test_a_sweeps_runs_nest_under_one_parent(paper_store):
    from mlflow.tracking import MlflowClient

    _, tracking = paper_store
    client = MlflowClient(tracking.uri)
    exp = client.get_experiment_by_name(tracking.experiment).experiment_id
    parents = client.search_runs([exp], "tags.sweep_parent = 'paper-grid'")
    assert len(parents) == 1
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'", max_results=1000)
    assert {r.data.tags["run_id"] for r in children} == {r.run_id for r in RUNS}


def test_the_tracker_saves_the_table_views_it_is_given(paper_store):
    """The records layer knows no table: the pipeline hands the tracker the report's views as experiment tags."""
    from mlflow.tracking import MlflowClient

    from harness.report import views

    tracking = OmegaConf.merge(paper_store[1], {"experiment": "views"})  # the paper store's runs stay as they are
    tags = views.experiment_tags()
    assert {"mlflow.sharedViewState.harness", "mlflow.sharedViewState.table1"} <= set(tags)
    tracker = Tracker(tracking, experiment_tags=tags)
    tracker.start("views-run", params={}, tags={"run_id": "views-run"})
    tracker.end()
    saved = MlflowClient(tracking.uri).get_experiment_by_name(tracking.experiment).tags
    assert {k: saved.get(k) for k in tags} == tags


CONCURRENT_RUN = """
import sys
from omegaconf import OmegaConf
from harness.records.tracking import Tracker
results, i = sys.argv[1], sys.argv[2]
t = Tracker(OmegaConf.create({"backend": "mlflow", "uri": f"sqlite:///{results}/mlflow.db", "experiment": "harness",
                              "timeout_s": 10}))
t.start(f"run-{i}", params={}, tags={"run_id": f"run-{i}"}, sweep="s1", lock_dir=results)
t.end()
assert t.active
"""


def test_concurrent_first_runs_of_a_sweep_share_one_parent(paper_store):
    from mlflow.tracking import MlflowClient

    results, tracking = paper_store  # a store that exists: the race is for the sweep's parent, not the schema
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_RUN, str(results), str(i)],
                              cwd=Path(__file__).resolve().parent.parent) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    client = MlflowClient(tracking.uri)
    exp = client.get_experiment_by_name("harness").experiment_id
    parents = client.search_runs([exp], "tags.sweep_parent = 's1'")
    assert len(parents) == 1
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert sorted(r.data.tags["run_id"] for r in children) == ["run-0", "run-1"]
    # artifacts go beside the store, not into whatever directory a run started in
    assert client.get_experiment(exp).artifact_location == str(results / "mlartifacts")


# ------------------------------------------------------------------------------------------------- the command
def test_bad_arguments_name_the_value_and_the_choices(tmp_path, capsys):
    write_disk(tmp_path / "results", RUNS[:2])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "table1.csv").write_text("kept")
    assert main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "out"), "--model", "tulu3"]) == 2
    err = capsys.readouterr().err
    assert "'tulu3'" in err and "tulu2_13b" in err and "tiny" in err
    assert main(["--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no results index at" in capsys.readouterr().err
    assert main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "out"), "--suite", "papr"]) == 2
    assert "'papr'" in capsys.readouterr().err
    assert (tmp_path / "out" / "table1.csv").read_text() == "kept"  # nothing written over


def test_mlflow_source_with_an_unknown_experiment_lists_the_experiments(paper_store, tmp_path, capsys):
    results, _ = paper_store
    assert main(["--source", "mlflow", "--results", str(results), "--experiment", "harnes", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'harnes'" in err and "'harness'" in err
