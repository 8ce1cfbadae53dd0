"""The report grid against an independent truth: per row of the paper's tables, the run the row means, written out by
hand from the paper (axes as `python -m harness` records them, see harness.pipeline.axes_of), not derived from
harness/report/grid.py.

Fake runs are built from this list, each carrying the paper's numbers for the cells the truth says it fills; the
report built from them must show the paper's numbers in every cell. A grid row pointing at another run shows that
run's number, and fails (test_a_row_pointing_at_another_run_is_caught).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from harness.report import grid
from harness.report.build import build, paper_number, paper_rows
from harness.report.runs import RunRecord
from harness.records.stages import digest

CONF = Path(__file__).resolve().parent.parent / "conf"
MODEL, SUITE = "tulu2_13b", "paper"
CATS = ("factuality", "reasoning", "coding", "truthfulness", "safety", "inst_following")


def run(model=MODEL, dataset="none", algorithm="none", reward_model="none", prompts="none", eval_suite=SUITE) -> tuple:
    return (model, dataset, algorithm, reward_model, prompts, eval_suite)


def dpo(dataset: str) -> tuple:
    return run(dataset=dataset, algorithm="dpo")


def ppo(rm: str, prompts: str = "uf") -> tuple:
    return run(algorithm="ppo", reward_model=rm, prompts=prompts)


SFT = run()
# Paper, Table 1: Tulu 2 13B SFT trained with DPO on each dataset (and the Llama 2 base and SFT models themselves).
TABLE1 = {
    ("Llama 2 base",): run(model="llama2_13b"), ("Tulu 2 (SFT)",): SFT,
    ("SHP-2",): dpo("shp2"), ("StackExchange",): dpo("stack_exchange"), ("PRM800k",): dpo("prm800k"),
    ("Chatbot Arena (2023)",): dpo("chatbot_arena_2023"), ("Chatbot Arena (2024)",): dpo("chatbot_arena_2024"),
    ("AlpacaF. Human Pref",): dpo("alpaca_farm_human"), ("HH-RLHF",): dpo("hh_rlhf"), ("HelpSteer",): dpo("helpsteer"),
    ("AlpacaF. GPT-4 Pref",): dpo("alpaca_farm_gpt4"), ("Capybara 7k",): dpo("capybara"), ("Orca Pairs",): dpo("orca"),
    ("Nectar",): dpo("nectar"), ("UltraF. (overall)",): dpo("ultrafeedback_overall"),
    ("UltraF. (fine-grained)",): dpo("ultrafeedback_fg"),
}
# Table 2: DPO and PPO on the same data (60,908-row subsets of the large sets). PPO trains its RM on the dataset and
# takes prompts from it (`algorithm.table2=true`: the run records dataset=X, reward_model and prompts "none"); the
# UltraFeedback PPO row is the 13B UltraFeedback RM with UF prompts.
TABLE2 = {}
for label, ds in {"StackExchange": "stack_exchange_60k", "ChatArena (2023)": "chatbot_arena_2023",
                  "HH-RLHF": "hh_rlhf_60k", "Nectar": "nectar_60k"}.items():
    TABLE2[(label, "DPO")] = dpo(ds)
    TABLE2[(label, "PPO")] = run(dataset=ds, algorithm="ppo")
TABLE2[("UltraFeedback (FG)", "DPO")] = dpo("ultrafeedback_fg")
TABLE2[("UltraFeedback (FG)", "PPO")] = ppo("uf_13b")
RMS = {"13B UltraF.": "uf_13b", "13B Mix": "mix_13b", "70B UltraF.": "uf_70b", "70B Mix": "mix_70b"}
# Table 3: each reward model scored on RewardBench, used for best-of-16 (on the best-of-N subset), and for PPO (UF).
TABLE3_COLUMNS = {
    "rewardbench_score": ("eval/rewardbench", lambda rm: run(reward_model=rm, eval_suite="rewardbench")),
    "best_of_n_avg": ("category/reasoning", lambda rm: run(algorithm="best_of_n", reward_model=rm, eval_suite="bon")),
    "ppo_gsm_acc": ("eval/gsm8k", ppo), "ppo_alpacaeval2_winrate": ("eval/alpaca_eval2", ppo),
    "ppo_avg_all_evals": ("average", ppo),
}
TABLE3 = {(f"{label} RM",): rm for label, rm in RMS.items()}
# Table 4: PPO with each RM on UltraFeedback or mixed prompts.
TABLE4 = {("Tulu 2 SFT", "-"): SFT, **{(label, p_label): ppo(rm, prompts) for label, rm in RMS.items()
                                        for p_label, prompts in (("UF", "uf"), ("Mixed", "mixed"))}}
TABLE4_COLUMNS = {"gsm_acc": "eval/gsm8k", "coding": "category/coding", "avg_all_evals": "average"}
# Table 5: other 13B models evaluated as they are, and the recipe's steps.
TABLE5 = {
    ("Llama 2 Chat 13B",): run(model="llama2_chat_13b"), ("Nous Hermes 13B",): run(model="nous_hermes_13b"),
    ("Vicuna 1.5 13B",): run(model="vicuna_13b"), ("Llama 2 13B Base",): run(model="llama2_13b"),
    ("Tulu 2 13B SFT",): SFT, ("Tulu 2+DPO 13B",): dpo("ultrafeedback_fg"),
    ("Tulu 2+PPO 13B (13B UFRM)",): ppo("uf_13b"), ("Tulu 2+PPO 13B (70B UFRM)",): ppo("uf_70b"),
    ("Tulu 2+PPO 13B (70B UFRM+MP)",): ppo("uf_70b", "mixed"),
}
# Figure 1: SFT -> + DPO (UF) -> PPO 13B UF RM -> + 70B UF RM -> + mixed prompts.
FIGURE1 = {("Tulu 2 SFT",): SFT, ("+ DPO (UF)",): dpo("ultrafeedback_fg"), ("PPO (13B UF RM)",): ppo("uf_13b"),
           ("+ 70B UF RM",): ppo("uf_70b"), ("+ mixed prompts",): ppo("uf_70b", "mixed")}
# Figure 3: PPO GSM8k accuracy on 20K prompts of each source (rows) with each RM (columns).
FIGURE3_PROMPTS = {("UltraFeedback",): "uf_20k", ("GSM8k",): "gsm8k", ("Math",): "math", ("Mixed",): "mixed_20k"}


def expected_cells() -> dict[tuple, tuple[tuple, str, float]]:
    """(table, row key, column) -> (axes of the run that fills it, metric, value) for every cell the paper prints."""
    out = {}

    def put(table, key, col, axes, metric, text):
        if (value := paper_number(text)) is not None:
            out[(table, key, col)] = (axes, metric, value)

    for table, rows in (("table1", TABLE1), ("table2", TABLE2), ("table5", TABLE5)):
        paper = paper_rows(table)
        for key, axes in rows.items():
            for col in (*CATS, "average"):
                put(table, key, col, axes, "average" if col == "average" else f"category/{col}", paper[key][col])
    for key, rm in TABLE3.items():
        for col, (metric, axes_of) in TABLE3_COLUMNS.items():
            put("table3", key, col, axes_of(rm), metric, paper_rows("table3")[key][col])
    for key, axes in TABLE4.items():
        for col, metric in TABLE4_COLUMNS.items():
            put("table4", key, col, axes, metric, paper_rows("table4")[key][col])
    # Figure 1 draws Table 4's GSM8k and Table 5's Average (the DPO model's GSM8k only as a bar: no number)
    t4 = {("Tulu 2 SFT",): ("Tulu 2 SFT", "-"), ("PPO (13B UF RM)",): ("13B UltraF.", "UF"),
          ("+ 70B UF RM",): ("70B UltraF.", "UF"), ("+ mixed prompts",): ("70B UltraF.", "Mixed")}
    t5 = dict(zip(FIGURE1, [("Tulu 2 13B SFT",), ("Tulu 2+DPO 13B",), ("Tulu 2+PPO 13B (13B UFRM)",),
                            ("Tulu 2+PPO 13B (70B UFRM)",), ("Tulu 2+PPO 13B (70B UFRM+MP)",)]))
    for key, axes in FIGURE1.items():
        if key in t4:
            put("figure1", key, "gsm_acc", axes, "eval/gsm8k", paper_rows("table4")[t4[key]]["gsm_acc"])
        put("figure1", key, "average", axes, "average", paper_rows("table5")[t5[key]]["average"])
    # Figure 3 prints no numbers: a distinct made-up GSM8k score per cell
    for i, (key, prompts) in enumerate(FIGURE3_PROMPTS.items()):
        for j, rm in enumerate(RMS.values()):
            out[("figure3", key, rm)] = (ppo(rm, prompts), "eval/gsm8k", f"{10.0 * i + j + 0.5}")
    return {k: (a, m, float(v)) for k, (a, m, v) in out.items()}


def fake_runs(cells: dict) -> list[RunRecord]:
    """One run per distinct axes, carrying every value the truth assigns it (the paper agrees with itself)."""
    metrics: dict[tuple, dict] = {}
    for (table, key, col), (axes, metric, value) in cells.items():
        held = metrics.setdefault(axes, {})
        assert held.setdefault(metric, value) == value, (table, key, col, held[metric], value)
    # Table 3's gain over SFT: the SFT model on the best-of-N subset, its reasoning score the paper's implied baseline
    t3 = paper_rows("table3").values()
    metrics[run(eval_suite="bon")] = {"category/reasoning": sum(
        float(r["best_of_n_avg"]) - float(r["best_of_n_delta_over_sft"]) for r in t3) / len(t3)}
    out = []
    for axes, m in metrics.items():
        named = dict(zip(grid.AXES, axes))
        out.append(RunRecord("-".join(axes), named, m, digest(named, 16), "2026-11-01T12:00:00+0000", "0123abcd", 42))
    return out


def wrong_cells(tables, runs: list[RunRecord], cells: dict) -> list[tuple]:
    """Cells of the built tables whose value is not the one the truth expects."""
    got = {}
    for table in tables:
        for r, col, cell in build(table, runs, MODEL, SUITE).cells():
            got[(table.name, r.key, col)] = cell.value
    return [(k, got.get(k), v) for k, (_, _, v) in cells.items()
            if k[0] in {t.name for t in tables} and (got.get(k) is None or abs(got[k] - v) > 1e-9)]


CELLS = expected_cells()
RUNS = fake_runs(CELLS)


def test_the_truth_names_real_config_entries():
    """Every axis value above is the `name` of a conf entry (what axes_of records), so the truth is about real runs."""
    names = {axis: {yaml.safe_load(p.read_text()).get("name") for p in (CONF / axis).glob("*.yaml")}
             for axis in ("model", "dataset", "reward_model", "prompts")}
    algorithms = {p.stem for p in (CONF / "algorithm").glob("*.yaml")}
    suites = {yaml.safe_load(p.read_text())["suite"] for p in (CONF / "eval").glob("*.yaml")}
    for axes, _, _ in CELLS.values():
        a = dict(zip(grid.AXES, axes))
        assert a["algorithm"] in algorithms and a["eval_suite"] in suites, a
        for axis in names:
            assert a[axis] == "none" or a[axis] in names[axis], (axis, a)


@pytest.mark.parametrize("overrides,axes", [  # the command of a paper run -> the axes written above for its row
    (["model=llama2_13b", "algorithm=none"], TABLE1[("Llama 2 base",)]),
    (["dataset=helpsteer", "algorithm=dpo"], TABLE1[("HelpSteer",)]),
    (["algorithm=ppo", "algorithm.table2=true", "reward_model=none", "prompts=from_dataset", "dataset=hh_rlhf_60k"],
     TABLE2[("HH-RLHF", "PPO")]),
    (["algorithm=none", "reward_model=mix_13b", "eval=rewardbench"], TABLE3_COLUMNS["rewardbench_score"][1]("mix_13b")),
    (["algorithm=ppo", "reward_model=uf_70b", "prompts=mixed"], TABLE5[("Tulu 2+PPO 13B (70B UFRM+MP)",)]),
])
def test_the_truth_is_what_a_paper_run_records(overrides, axes):
    from conftest import compose
    from harness.pipeline import axes_of

    cfg = compose("model=tulu2_13b", "eval=paper", *overrides)
    assert tuple(axes_of(cfg)[a] for a in grid.AXES) == axes


def test_every_printed_cell_of_the_paper_is_in_the_truth():
    printed = {(t.name, key, col) for t in grid.TABLES for key, row in paper_rows(t.name).items()
               for col, text in row.items() if col not in (*t.key_columns, *t.info_columns) and paper_number(text) is not None
               and col != "best_of_n_delta_over_sft" and key != ("Avg. delta PPO - DPO", "")}
    assert printed <= set(CELLS)


def test_every_cell_shows_the_number_of_the_run_the_paper_means():
    assert wrong_cells((*grid.TABLES, *grid.FIGURES), RUNS, CELLS) == []


def test_best_of_n_gain_and_ppo_dpo_delta_come_from_the_right_runs():
    t3 = {r.key: cells for r, _, cells in build(grid.TABLE3, RUNS, MODEL, SUITE).rows}
    for key, row in paper_rows("table3").items():
        # the paper's gains imply SFT baselines of 50.8-51.1 (rounding): equal within 0.25
        assert t3[key]["best_of_n_delta_over_sft"].value == pytest.approx(float(row["best_of_n_delta_over_sft"]), abs=0.25)
    t2 = {r.key: cells for r, _, cells in build(grid.TABLE2, RUNS, MODEL, SUITE).rows}
    p2 = paper_rows("table2")
    for col in (*CATS, "average"):  # mean over the five datasets of PPO - DPO, from the paper's own rows
        pairs = [(p2[(d, "PPO")][col], p2[(d, "DPO")][col]) for d, a in p2 if a == "PPO"]
        expected = sum(float(p) - float(d) for p, d in pairs) / len(pairs)
        assert t2[("Avg. delta PPO - DPO", "")][col].value == pytest.approx(expected, abs=1e-9), col


@pytest.mark.parametrize("table,key,to", [
    ("table1", ("HH-RLHF",), {"algorithm": "dpo", "dataset": "helpsteer"}),
    ("table2", ("Nectar", "PPO"), {"algorithm": "ppo", "dataset": "nectar"}),  # the full set, not the 60K subset
    ("table4", ("70B Mix", "Mixed"), {"algorithm": "ppo", "reward_model": "mix_70b", "prompts": "uf"}),
    ("table5", ("Tulu 2+PPO 13B (70B UFRM)",), {"algorithm": "ppo", "reward_model": "uf_70b", "prompts": "mixed"}),
])
def test_a_row_pointing_at_another_run_is_caught(table, key, to):
    original = grid.BY_NAME[table]
    rows = tuple(grid.Row(r.key, (grid.Term(1.0, to),)) if r.key == key else r for r in original.rows)
    broken = dataclasses.replace(original, rows=rows)
    wrong = wrong_cells((broken,), RUNS, CELLS)
    assert wrong and {k[1] for k, _, _ in wrong} == {key}
