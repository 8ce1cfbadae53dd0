"""Three real tiny runs on the tiny grid's PRM800k stand-in, shared by every test here: DPO with the paper's recipe
(beta 0.1; with a learning curve every 3 steps), DPO with beta 0.5, and IPO, each logged to MLflow.

- the report fills Table 1's PRM800k cell with the recipe run alone and lists the beta 0.5 run as its variant;
- `python -m harness.compare` prints the fields the three differ in and paired intervals, the same from disk and MLflow;
- every benchmark's item table gives back its score; the DPO run's learning curve is recorded, logged and drawn.
"""

from __future__ import annotations

import csv
import json

import pytest

from conftest import compose
from harness.compare import main as compare_main
from harness.pipeline import run
from harness.report import bootstrap
from harness.report.__main__ import main as report_main

GRID = ["scale=tiny", "dataset=prm800k", "eval=tiny_grid"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_stages):
    home = tmp_path_factory.mktemp("compare")
    base = [f"paths.home={home}", f"paths.stages={shared_stages}", *GRID]
    made = {name: run(compose(*base, *extra)) for name, extra in (
        ("dpo", ["algorithm.eval_every=3"]), ("beta", ["algorithm.beta=0.5"]), ("ipo", ["algorithm=ipo"]))}
    return home / "results", made


def rows(path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def test_a_cell_holds_one_recipe_and_lists_its_variant(runs, tmp_path):
    results, made = runs
    for source in ("disk", "mlflow"):
        assert report_main(["--source", source, "--results", str(results), "--out", str(tmp_path / source),
                            "--model", "tiny"]) == 0
    for name in ("table1.md", "table1.csv", "table1_variants.csv", "figure1.csv", "curves.csv"):
        assert (tmp_path / "disk" / name).read_text() == (tmp_path / "mlflow" / name).read_text(), name
    out = tmp_path / "disk"
    prm = next(r for r in rows(out / "table1.csv") if r["source"] == "PRM800k")
    dpo = made["dpo"]
    assert prm["factuality_n"] == "1"  # not x2: the beta 0.5 run is another recipe
    assert prm["factuality"] == f"{dpo['categories']['factuality']:.1f}"
    behind = {r["run_id"] for r in rows(out / "table1_runs.csv") if r["row"] == "PRM800k"}
    assert behind == {dpo["run_id"]}
    variants = rows(out / "table1_variants.csv")
    assert [(v["row"], v["run_id"], v["changes"]) for v in variants] == [("PRM800k", made["beta"]["run_id"],
                                                                         "algorithm.beta=0.5")]
    assert variants[0]["average"] == f"{made['beta']['average']:.1f}"
    md = (out / "table1.md").read_text()
    assert f"| PRM800k | {made['beta']['run_id']} | algorithm.beta=0.5 |" in md.split("## Variants")[1]
    assert made["ipo"]["run_id"] not in md  # IPO is no row of the paper's grid: neither a cell nor a variant
    # the cell's interval, from the run's items; the length-controlled AlpacaEval has none, nor its category
    assert prm["factuality_lo"] != "n/a" and float(prm["factuality_lo"]) <= float(prm["factuality"]) <= float(prm["factuality_hi"])
    assert prm["inst_following_lo"] == "n/a" and prm["average_lo"] == "n/a"
    assert f"{prm['factuality']} [{prm['factuality_lo']}, {prm['factuality_hi']}]" in md


def test_compare_prints_differing_fields_and_paired_intervals_from_disk_and_mlflow(runs, tmp_path, capsys):
    results, made = runs
    ids = [made[k]["run_id"] for k in ("dpo", "beta", "ipo")]
    assert compare_main([*ids, "--results", str(results), "--out", str(tmp_path / "disk"), "--plot"]) == 0
    printed = capsys.readouterr().out
    assert compare_main([*ids, "--source", "mlflow", "--results", str(results), "--out", str(tmp_path / "mlflow")]) == 0
    for name in ("compare.md", "compare.csv", "compare_config.csv"):
        assert (tmp_path / "disk" / name).read_text() == (tmp_path / "mlflow" / name).read_text(), name
    assert (tmp_path / "disk" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    # the fields in which the three differ, computed from their configurations (seeds and all else equal)
    fields = {r["field"]: [r[i] for i in ids] for r in rows(tmp_path / "disk" / "compare_config.csv")}
    assert fields == {"algorithm.beta": ["0.1", "0.5", "0.1"], "algorithm.loss_type": ["sigmoid", "sigmoid", "ipo"],
                      "algorithm.name": ["dpo", "dpo", "ipo"]}
    assert "| algorithm.beta | 0.1 | 0.5 | 0.1 |" in printed
    # differences to the baseline (the first run), paired: the same items; none for the fitted AlpacaEval 2
    diffs = {(r["metric"], r["run_id"]): r for r in rows(tmp_path / "disk" / "compare.csv") if r["difference"]}
    for metric in ("eval/mmlu", "eval/humaneval_plus", "eval/xstest", "category/coding"):
        for other in ids[1:]:
            d = diffs[(metric, other)]
            assert d["pairing"] == bootstrap.PAIRED and float(d["lo"]) <= float(d["difference"]) <= float(d["hi"])
    assert diffs[("eval/alpaca_eval2", ids[1])]["lo"] == "" and diffs[("average", ids[1])]["lo"] == ""
    assert "| eval/mmlu |" in printed and "no interval" in printed
    # the same runs chosen by their configuration or an MLflow filter
    assert compare_main(["--where", "algorithm.beta=0.5", "--results", str(results), "--out", str(tmp_path / "w")]) == 0
    assert compare_main(["--mlflow", "tags.algorithm = 'ipo'", "--results", str(results), "--out", str(tmp_path / "m")]) == 0
    assert {r["run_id"] for r in rows(tmp_path / "w" / "compare.csv")} == {ids[1]}
    assert {r["run_id"] for r in rows(tmp_path / "m" / "compare.csv")} == {ids[2]}
    assert compare_main(["no-such-run", "--results", str(results)]) == 2
    assert "error: run 'no-such-run' names 0 recorded runs" in capsys.readouterr().err


def test_every_benchmark_records_items_that_give_back_its_score(runs):
    results, made = runs
    items = json.loads((results / "runs" / made["dpo"]["run_id"] / "items.json").read_text())
    assert set(items) == set(made["dpo"]["benchmarks"])
    for key, table in items.items():
        if key == "alpaca_eval2":  # the length-controlled win rate: a fitted model
            assert "not a statistic of items" in table["error"]
        else:
            assert "error" not in table and len(table["ids"]) == made["dpo"]["benchmarks"][key]["n"] > 0, key


def test_a_dpo_run_with_eval_every_records_logs_and_draws_its_learning_curve(runs, tmp_path):
    from mlflow.tracking import MlflowClient

    results, made = runs
    dpo = made["dpo"]
    final = dpo["training"]["global_step"]
    assert final == 6 and sorted(dpo["curve"], key=int) == ["3", "6"]  # a checkpoint at step 3, the final policy
    assert set(dpo["curve"]["3"]) >= {"eval/gsm8k", "eval/ifeval", "category/reasoning"}
    history = MlflowClient(f"sqlite:///{results}/mlflow.db").get_metric_history(dpo["mlflow_run_id"], "curve/eval/gsm8k")
    assert [(m.step, m.value) for m in history] == [(3, dpo["curve"]["3"]["eval/gsm8k"]), (6, dpo["curve"]["6"]["eval/gsm8k"])]
    assert "curve" not in made["beta"]  # eval_every is the run's own option, not the policy's
    assert report_main(["--results", str(results), "--out", str(tmp_path), "--model", "tiny"]) == 0
    points = {(r["run_id"], r["step"], r["metric"]) for r in rows(tmp_path / "curves.csv")}
    assert {(dpo["run_id"], s, "eval/ifeval") for s in ("3", "6")} <= points
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_runs_are_selected_by_id_prefix_axis_field_and_sweep():
    from harness.config.errors import ConfigError
    from harness.report.compare import parse_where, select
    from harness.report.runs import RunRecord

    def rec(run_id, beta, sweep=None):
        return RunRecord(run_id, {"algorithm": "dpo", "dataset": "tiny"}, {}, "h", "d", "c", 1,
                         config={"algorithm": {"beta": beta}}, sweep=sweep)

    runs = [rec("dpo-a1", 0.1, "s1"), rec("dpo-a2", 0.5, "s1"), rec("dpo-b1", 0.5)]
    assert [r.run_id for r in select(runs, ["dpo-b"], [], None)] == ["dpo-b1"]
    assert [r.run_id for r in select(runs, [], parse_where(["algorithm.beta=0.5"]), None)] == ["dpo-a2", "dpo-b1"]
    assert [r.run_id for r in select(runs, [], parse_where(["algorithm.beta=0.5"]), "s1")] == ["dpo-a2"]
    assert [r.run_id for r in select(runs, [], parse_where(["algorithm=dpo", "seed=1"]), "s1")] == ["dpo-a1", "dpo-a2"]
    with pytest.raises(ConfigError, match="'dpo-a' names 2 recorded runs"):
        select(runs, ["dpo-a"], [], None)
    with pytest.raises(ConfigError, match="no run matches"):
        select(runs, [], parse_where(["algorithm.beta=0.3"]), None)
