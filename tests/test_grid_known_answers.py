"""Known answers for the report grid (harness/report/grid.py), written out by hand from the paper: which run each row
of Tables 1-5 and Figures 1 and 3 selects, under which columns, with which weight and recipe options, beside which
paper number; and which tables a run belongs to (the MLflow tags). Pure functions on hand-built inputs: no runs, no
training (milliseconds).

The first test checks the whole grid as built at import: mutation testing (benchmarks/mutation.py) maps the functions
that run only at import (row, ppo, dpo, step, mean_difference, category_columns) to the first test of this file, so it
must be the one that looks at every table.
"""

from __future__ import annotations

import pytest

from harness.report import grid
from harness.report.build import paper_value

B, M = grid.BASE, grid.MAIN
CATS = ("factuality", "reasoning", "coding", "truthfulness", "safety", "inst_following")
# Column (key, metric, column selector, subtracted selector) of Tables 1, 2 and 5: the paper's category columns.
CATEGORY_COLUMNS = [*((c, f"category/{c}", {}, None) for c in CATS), ("average", "average", {}, None)]
SFT = {"algorithm": "none"}
LLAMA2_BASE = {"model": "llama2_13b", "algorithm": "none"}
TABLE2_PPO = ("algorithm.table2=true", "reward_model=none", "prompts=from_dataset")


def dpo(dataset: str) -> dict:
    return {"algorithm": "dpo", "dataset": dataset}


def ppo(rm: str | None, prompts: str = "uf") -> dict:
    """PPO on the given RM and prompts; dataset none (Table 2's own-RM PPO runs carry their dataset)."""
    return {"algorithm": "ppo", "prompts": prompts, "dataset": "none", **({"reward_model": rm} if rm else {})}


def one(select: dict, overrides: tuple = ()) -> list:
    """A plain row: one term of weight 1."""
    return [(1.0, select, overrides)]


TABLE1_ROWS = {
    ("Llama 2 base",): one(LLAMA2_BASE), ("Tulu 2 (SFT)",): one(SFT),
    ("SHP-2",): one(dpo("shp2")), ("StackExchange",): one(dpo("stack_exchange")), ("PRM800k",): one(dpo("prm800k")),
    ("Chatbot Arena (2023)",): one(dpo("chatbot_arena_2023")), ("Chatbot Arena (2024)",): one(dpo("chatbot_arena_2024")),
    ("AlpacaF. Human Pref",): one(dpo("alpaca_farm_human")), ("HH-RLHF",): one(dpo("hh_rlhf")),
    ("HelpSteer",): one(dpo("helpsteer")), ("AlpacaF. GPT-4 Pref",): one(dpo("alpaca_farm_gpt4")),
    ("Capybara 7k",): one(dpo("capybara")), ("Orca Pairs",): one(dpo("orca")), ("Nectar",): one(dpo("nectar")),
    ("UltraF. (overall)",): one(dpo("ultrafeedback_overall")), ("UltraF. (fine-grained)",): one(dpo("ultrafeedback_fg")),
}
# Table 2: per dataset its DPO row then its PPO row (RM trained on the dataset, its prompts: the run carries dataset=X,
# with the sweep's options); UltraFeedback's PPO is the 13B UF RM on UF prompts. Then the mean of PPO - DPO over the
# five datasets: +1/5 on each PPO run, -1/5 on each DPO run.
T2 = {"StackExchange": "stack_exchange_60k", "ChatArena (2023)": "chatbot_arena_2023", "HH-RLHF": "hh_rlhf_60k",
      "Nectar": "nectar_60k", "UltraFeedback (FG)": "ultrafeedback_fg"}
T2_PPO = {label: (ppo("uf_13b"), ()) if ds == "ultrafeedback_fg" else ({"algorithm": "ppo", "dataset": ds}, TABLE2_PPO)
          for label, ds in T2.items()}
TABLE2_ROWS = {k: v for label, ds in T2.items()
               for k, v in (((label, "DPO"), one(dpo(ds))), ((label, "PPO"), one(*T2_PPO[label])))}
TABLE2_ROWS[("Avg. delta PPO - DPO", "")] = [t for label, ds in T2.items()
                                             for t in ((0.2, *T2_PPO[label]), (-0.2, dpo(ds), ()))]
RMS = {"13B UltraF.": "uf_13b", "13B Mix": "mix_13b", "70B UltraF.": "uf_70b", "70B Mix": "mix_70b"}
BON = {"algorithm": "best_of_n", "eval_suite": "bon"}
EXPECTED = {  # table -> (key columns, columns, rows: key -> [(weight, selector, overrides)])
    "table1": (("source",), CATEGORY_COLUMNS, TABLE1_ROWS),
    "table2": (("data", "algorithm"), CATEGORY_COLUMNS, TABLE2_ROWS),
    "table3": (("reward_model",), [
        ("rewardbench_score", "eval/rewardbench", {"eval_suite": "rewardbench", "algorithm": "none"}, None),
        ("best_of_n_avg", "mean_of_present_categories", BON, None),
        ("best_of_n_delta_over_sft", "mean_of_present_categories", BON, {"algorithm": "none", "eval_suite": "bon"}),
        ("ppo_gsm_acc", "eval/gsm8k", ppo(None), None), ("ppo_alpacaeval2_winrate", "eval/alpaca_eval2", ppo(None), None),
        ("ppo_avg_all_evals", "average", ppo(None), None)],
        {(f"{label} RM",): one({"reward_model": rm}) for label, rm in RMS.items()}),
    "table4": (("reward_model", "prompts"),
               [("gsm_acc", "eval/gsm8k", {}, None), ("coding", "category/coding", {}, None),
                ("avg_all_evals", "average", {}, None)],
               {("Tulu 2 SFT", "-"): one(SFT), **{(label, p): one(ppo(rm, prompts)) for label, rm in RMS.items()
                                                    for p, prompts in (("UF", "uf"), ("Mixed", "mixed"))}}),
    "table5": (("model",), CATEGORY_COLUMNS, {
        ("Llama 2 Chat 13B",): one({"model": "llama2_chat_13b", "algorithm": "none"}),
        ("Nous Hermes 13B",): one({"model": "nous_hermes_13b", "algorithm": "none"}),
        ("Vicuna 1.5 13B",): one({"model": "vicuna_13b", "algorithm": "none"}),
        ("Llama 2 13B Base",): one(LLAMA2_BASE), ("Tulu 2 13B SFT",): one(SFT),
        ("Tulu 2+DPO 13B",): one(dpo("ultrafeedback_fg")), ("Tulu 2+PPO 13B (13B UFRM)",): one(ppo("uf_13b")),
        ("Tulu 2+PPO 13B (70B UFRM)",): one(ppo("uf_70b")), ("Tulu 2+PPO 13B (70B UFRM+MP)",): one(ppo("uf_70b", "mixed"))}),
    "figure1": (("step",), [("gsm_acc", "eval/gsm8k", {}, None), ("average", "average", {}, None)], {
        ("Tulu 2 SFT",): one(SFT), ("+ DPO (UF)",): one(dpo("ultrafeedback_fg")),
        ("PPO (13B UF RM)",): one(ppo("uf_13b")), ("+ 70B UF RM",): one(ppo("uf_70b")),
        ("+ mixed prompts",): one(ppo("uf_70b", "mixed"))}),
    "figure3": (("prompts",), [(rm, "eval/gsm8k", {"reward_model": rm}, None) for rm in RMS.values()],
                {(label,): one(ppo(None, p)) for label, p in
                 (("UltraFeedback", "uf_20k"), ("GSM8k", "gsm8k"), ("Math", "math"), ("Mixed", "mixed_20k"))}),
}
# Figure 1 prints the paper's Table 4 GSM8k (none for the DPO step: only drawn) and Table 5 Average beside each step.
FIGURE1_PAPER = {("Tulu 2 SFT",): (46.0, 56.8), ("+ DPO (UF)",): (None, 61.0), ("PPO (13B UF RM)",): (53.0, 62.2),
                 ("+ 70B UF RM",): (58.0, 62.8), ("+ mixed prompts",): (56.5, 62.4)}


def shape(table: grid.Table) -> tuple:
    columns = [(c.key, c.metric, dict(c.select), None if c.minus is None else dict(c.minus)) for c in table.columns]
    rows = {r.key: [(t.weight, dict(t.select), t.overrides) for t in r.terms] for r in table.rows}
    return table.key_columns, columns, rows


def test_the_grid_as_built_selects_the_runs_the_paper_means():
    """Every table and figure: its label columns, its columns (metric, what each adds, what it subtracts), its rows in
    the paper's order with each term's weight, run selector and recipe options, and Figure 1's paper numbers."""
    assert [t.name for t in grid.TABLES] == ["table1", "table2", "table3", "table4", "table5"]
    assert [t.name for t in grid.FIGURES] == ["figure1", "figure3"]
    for name, (keys, columns, rows) in EXPECTED.items():
        got_keys, got_columns, got_rows = shape(grid.BY_NAME[name])
        assert got_keys == keys, name
        assert got_columns == columns, name
        assert list(got_rows) == list(rows), name  # the paper's row order, keys as tuples
        for key, terms in rows.items():
            assert got_rows[key] == terms, (name, key)
    assert grid.TABLE1.info_columns == ("group", "samples")
    for key, (gsm, average) in FIGURE1_PAPER.items():
        step = next(r for r in grid.FIGURE1.rows if r.key == key)
        assert (paper_value(grid.FIGURE1, step, "gsm_acc"), paper_value(grid.FIGURE1, step, "average")) == (gsm, average)
        assert set(step.paper) == ({"average"} if gsm is None else {"gsm_acc", "average"}), key
    assert all(r.paper == {} for t in (*grid.TABLES, grid.FIGURE3) for r in t.rows)


def test_row_wraps_a_label_and_keeps_a_key():
    assert grid.row("Nectar", algorithm="dpo", dataset="nectar") == \
        grid.Row(("Nectar",), (grid.Term(1.0, {"algorithm": "dpo", "dataset": "nectar"}, ()),))
    r = grid.row(("70B Mix", "Mixed"), ("algorithm.kl_coef=0.1",), algorithm="ppo")
    assert r.key == ("70B Mix", "Mixed")
    assert [(t.weight, dict(t.select), t.overrides) for t in r.terms] == [(1.0, {"algorithm": "ppo"}, ("algorithm.kl_coef=0.1",))]


def test_mean_difference_weighs_each_pair_one_over_their_count():
    a1, b1 = grid.row("a1", ("x=1",), algorithm="ppo", dataset="d1"), grid.row("b1", algorithm="dpo", dataset="d1")
    a2, b2 = grid.row("a2", algorithm="ppo", dataset="d2"), grid.row("b2", ("y=2",), algorithm="dpo", dataset="d2")
    r = grid.mean_difference(("delta", ""), [(a1, b1), (a2, b2)])
    assert r.key == ("delta", "")
    assert [(t.weight, dict(t.select), t.overrides) for t in r.terms] == [
        (0.5, {"algorithm": "ppo", "dataset": "d1"}, ("x=1",)), (-0.5, {"algorithm": "dpo", "dataset": "d1"}, ()),
        (0.5, {"algorithm": "ppo", "dataset": "d2"}, ()), (-0.5, {"algorithm": "dpo", "dataset": "d2"}, ("y=2",))]
    assert [t.weight for t in grid.mean_difference(("d",), [(a1, b1)] * 4).terms] == [0.25, -0.25] * 4


def test_selector_helpers():
    assert grid.ppo() == {"algorithm": "ppo", "prompts": "uf", "dataset": "none"}  # no reward_model: the column's
    assert grid.ppo("mix_70b", "mixed") == {"algorithm": "ppo", "prompts": "mixed", "dataset": "none", "reward_model": "mix_70b"}
    assert grid.dpo("helpsteer") == {"algorithm": "dpo", "dataset": "helpsteer"}
    assert grid.category_columns() == tuple(grid.Column(k, m) for k, m, _, _ in CATEGORY_COLUMNS)
    step = grid.step("s", {"algorithm": "none"}, ("Tulu 2 SFT", "-"), ("Tulu 2 13B SFT",))
    assert step == grid.Row(("s",), (grid.Term(1.0, {"algorithm": "none"}),), {
        "average": ("table5", ("Tulu 2 13B SFT",), "average"), "gsm_acc": ("table4", ("Tulu 2 SFT", "-"), "gsm_acc")})
    assert grid.step("s", {}, None, ("x",)).paper == {"average": ("table5", ("x",), "average")}


def test_cell_terms_merge_row_column_and_placeholders():
    ppo_uf = next(c for c in grid.TABLE3.columns if c.key == "ppo_gsm_acc")
    rm_row = next(r for r in grid.TABLE3.rows if r.key == ("70B Mix RM",))
    assert grid.cell_terms(rm_row, ppo_uf) == [grid.Term(1.0, {"model": B, "eval_suite": M, "reward_model": "mix_70b",
                                                               "algorithm": "ppo", "prompts": "uf", "dataset": "none"}, ())]
    gain = next(c for c in grid.TABLE3.columns if c.key == "best_of_n_delta_over_sft")
    assert grid.cell_terms(rm_row, gain) == [
        grid.Term(1.0, {"model": B, "eval_suite": "bon", "reward_model": "mix_70b", "algorithm": "best_of_n"}, ()),
        grid.Term(-1.0, {"model": B, "eval_suite": "bon", "algorithm": "none"}, ())]  # SFT on the same subset
    t2_ppo = next(r for r in grid.TABLE2.rows if r.key == ("Nectar", "PPO"))
    [term] = grid.cell_terms(t2_ppo, grid.TABLE2.columns[0])
    assert term.overrides == TABLE2_PPO and dict(term.select) == {"model": B, "eval_suite": M, "algorithm": "ppo",
                                                                 "dataset": "nectar_60k"}
    [term] = grid.cell_terms(grid.TABLE1.rows[1], grid.TABLE1.columns[0])
    assert term.overrides == () and dict(term.select) == {"model": B, "eval_suite": M, "algorithm": "none"}


def test_played_by_is_the_stand_in_only_in_another_grid(monkeypatch):
    assert grid.played_by("llama2_13b", "tiny") == "llama2_13b_tiny"  # conf/model/llama2_13b_tiny.yaml
    assert grid.played_by("vicuna_13b", "tiny") == "vicuna_13b_tiny"
    assert grid.played_by("llama2_13b", "tulu2_13b") == "llama2_13b"  # no llama2_13b_tulu2_13b: itself
    assert grid.played_by("llama2_13b", None) == "llama2_13b"
    assert grid.played_by(None, "tiny") is None
    monkeypatch.setattr(grid, "model_entries", lambda: frozenset({"tiny_tiny", "llama2_13b_tiny"}))
    assert grid.played_by("tiny", "tiny") == "tiny"  # in its own grid a model is itself, whatever entries exist


def test_matches_resolves_placeholders_and_stand_ins():
    sft = {"model": B, "algorithm": "none", "eval_suite": M}
    assert grid.matches(sft, {"model": "tiny", "algorithm": "none", "eval_suite": "tiny_grid"}, "tiny", "tiny_grid")
    assert not grid.matches(sft, {"model": "tiny", "algorithm": "none", "eval_suite": "bon"}, "tiny", "tiny_grid")
    llama = {"model": "llama2_13b", "algorithm": "none", "eval_suite": M}
    assert grid.matches(llama, {"model": "llama2_13b_tiny", "algorithm": "none", "eval_suite": "tiny_grid"}, "tiny", "tiny_grid")
    assert not grid.matches(llama, {"model": "llama2_13b", "algorithm": "none", "eval_suite": "tiny_grid"}, "tiny", "tiny_grid")
    assert grid.matches(llama, {"model": "llama2_13b", "algorithm": "none", "eval_suite": "paper"}, None, "paper")
    assert grid.matches({"algorithm": "dpo"}, {"model": "any", "algorithm": "dpo"}, "tiny", "tiny_grid")  # no model axis


def test_grid_base_of_each_kind_of_model():
    assert grid.grid_base("tulu2_13b") == "tulu2_13b"  # the paper's grid
    assert grid.grid_base("tiny") == "tiny"
    assert grid.grid_base("llama2_13b") is None  # a model the grid names: in every grid
    assert grid.grid_base("vicuna_13b") is None
    assert grid.grid_base("llama2_13b_tiny") == "tiny"  # a stand-in: in the grid of its base
    assert grid.grid_base("nous_hermes_13b_tiny") == "tiny"
    assert grid.grid_base("llama2_13b_other") == "llama2_13b_other"  # no conf/model entry: not a stand-in
    assert grid.grid_base(None) is None


PAPER = {"model": "tulu2_13b", "dataset": "none", "algorithm": "none", "reward_model": "none", "prompts": "none",
         "eval_suite": "paper"}


@pytest.mark.parametrize("axes,tables", [
    ({}, ["table1", "table4", "table5", "figure1"]),  # the SFT model
    ({"eval_suite": "bon"}, ["table3"]),  # SFT on the best-of-N subset: Table 3's gain baseline only
    ({"reward_model": "mix_13b", "eval_suite": "rewardbench"}, ["table3"]),
    ({"algorithm": "best_of_n", "reward_model": "uf_70b", "eval_suite": "bon"}, ["table3"]),
    ({"model": "llama2_13b"}, ["table1", "table5"]),
    ({"model": "vicuna_13b"}, ["table5"]),
    ({"algorithm": "dpo", "dataset": "ultrafeedback_fg"}, ["table1", "table2", "table5", "figure1"]),
    ({"algorithm": "dpo", "dataset": "nectar_60k"}, ["table2"]),
    ({"algorithm": "ppo", "dataset": "nectar_60k"}, ["table2"]),
    ({"algorithm": "ppo", "reward_model": "uf_13b", "prompts": "uf"}, ["table2", "table3", "table4", "table5", "figure1"]),
    ({"algorithm": "ppo", "reward_model": "uf_70b", "prompts": "mixed"}, ["table4", "table5", "figure1"]),
    ({"algorithm": "ppo", "reward_model": "mix_13b", "prompts": "uf_20k"}, ["figure3"]),
    ({"algorithm": "dpo", "dataset": "tiny"}, []),
    ({"model": "tiny", "eval_suite": "tiny_grid"}, ["table1", "table4", "table5", "figure1"]),  # the tiny grid's SFT
    ({"model": "llama2_13b_tiny", "eval_suite": "tiny_grid"}, ["table1", "table5"]),
    ({"model": "vicuna_13b_tiny", "eval_suite": "tiny_grid"}, ["table5"]),
    ({"model": "tiny", "eval_suite": "bon"}, ["table3"]),
])
def test_memberships(axes, tables):
    assert grid.memberships(PAPER | axes) == tables


def test_table_tags():
    assert grid.membership_tag("table3") == "table_3" and grid.membership_tag("figure1") == "figure_1"
    assert grid.table_tags(PAPER) == {"table": "1", "table_1": "1", "table_4": "1", "table_5": "1", "figure_1": "1"}
    assert grid.table_tags(PAPER | {"algorithm": "dpo", "dataset": "nectar_60k"}) == {"table": "2", "table_2": "1"}
    assert grid.table_tags(PAPER | {"eval_suite": "bon"}) == {"table": "3", "table_3": "1"}
    assert grid.table_tags(PAPER | {"algorithm": "ppo", "reward_model": "uf_13b", "prompts": "gsm8k"}) == {"figure_3": "1"}
    assert grid.table_tags(PAPER | {"algorithm": "dpo", "dataset": "tiny"}) == {}
