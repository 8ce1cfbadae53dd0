"""Which runs fill which cell of the paper's Tables 1-5 and Figures 1 and 3: a declarative grid over the runs' axes.

    python -m harness.report        # renders this grid from the runs present (harness/report/__main__.py)

A run is matched by its axes (results index row: `model`, `dataset`, `algorithm`, `reward_model`, `prompts`,
`eval_suite`; see harness.pipeline.axes_of), never by run id. A selector names only the axes that matter: an axis it
leaves out matches any value, so seeds and re-runs of one configuration fall into the same cell (mean and count).
`model` defaults to BASE, the report's base model (the paper's `tulu2_13b`, or `tiny` for the tiny grid), and
`eval_suite` to MAIN, the report's main suite (`paper`, or `tiny_grid`). A model the grid names (Llama 2 base, Table 5's
models) is played in the grid of base model B by its stand-in `<model>_B` where conf/model has one (the tiny grid's
conf/model/llama2_13b_tiny.yaml ...; see sweeps/tiny_all.yaml).

A cell is a sum of terms, each the mean of one metric over the runs one selector matches, times a weight: a plain cell
is one term of weight 1; Table 2's average delta and Table 3's best-of-N gain over SFT are differences of such means.
Of the runs a selector matches, only those of the paper's recipe for the cell count (harness.report.recipe: the
default composition of the selector's axes plus the term's `overrides`); the others are listed as variants.
The same grid tags MLflow runs with the tables they belong to (`table_tags`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Mapping, Optional

from harness.config.schema import CATEGORIES

BASE = "{base model}"
MAIN = "{main suite}"
DEFAULTS = {"model": BASE, "eval_suite": MAIN}
AXES = ("model", "dataset", "algorithm", "reward_model", "prompts", "eval_suite")
# The paper's model; the tiny grid is rendered with --model tiny.
PAPER_MODEL = "tulu2_13b"
# Best-of-N is evaluated on a subset of the suite (GSM8k, BBH, HumanEval+, IFEval, AlpacaEval, XSTest: protocol), so
# its "average" is the mean of the categories that subset covers. Inferred: the paper does not say how it averaged.
CATEGORIES_MEAN = "mean_of_present_categories"


@dataclass(frozen=True)
class Term:
    weight: float
    select: Mapping[str, str]
    # Options the paper's grid sets beyond the axes (as its sweep does), part of the cell's recipe.
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    # The row's label cells, as in the paper's CSV (its key columns).
    key: tuple[str, ...]
    terms: tuple[Term, ...]
    # Paper values taken from another table, column -> (table name, row key, column) (Figure 1 only).
    paper: Mapping[str, tuple[str, tuple[str, ...], str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    # Column name in the paper's CSV and in the report.
    key: str
    # Results index key: eval/<benchmark>, category/<name>, average, or CATEGORIES_MEAN.
    metric: str
    # Axes added to every term of the row (Table 3: which kind of run feeds this column).
    select: Mapping[str, str] = field(default_factory=dict)
    # A selector (not merged with the row's) whose mean is subtracted: "gain over" columns.
    minus: Optional[Mapping[str, str]] = None


@dataclass(frozen=True)
class Table:
    name: str                      # file stem of the outputs: table1 ... table5, figure1, figure3
    title: str
    paper_csv: Optional[str]       # the paper's numbers, under harness/assets/paper_tables/
    key_columns: tuple[str, ...]   # label columns (the row key)
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    info_columns: tuple[str, ...] = ()  # the paper's columns shown as they are (Table 1's sample counts)

    @property
    def number(self) -> str:
        return self.name.removeprefix("table").removeprefix("figure")


def row(key: str | tuple[str, ...], overrides: tuple[str, ...] = (), **select: str) -> Row:
    return Row(key if isinstance(key, tuple) else (key,), (Term(1.0, select, overrides),))


def mean_difference(key: tuple[str, ...], pairs: list[tuple[Row, Row]]) -> Row:
    """mean over pairs of (first - second): Table 2's "Avg. delta PPO - DPO"."""
    w = 1.0 / len(pairs)
    return Row(key, tuple(Term(s * w, r.terms[0].select, r.terms[0].overrides) for a, b in pairs
                          for s, r in ((1, a), (-1, b))))


def category_columns() -> tuple[Column, ...]:
    return (*(Column(c, f"category/{c}") for c in CATEGORIES), Column("average", "average"))


# --------------------------------------------------------------------------------------------- axes of the paper's runs
SFT = {"algorithm": "none"}
LLAMA2_BASE = {"model": "llama2_13b", "algorithm": "none"}


def ppo(reward_model: str | None = None, prompts: str = "uf") -> dict:
    """PPO on a reward model (None: any, set by the column) and a prompt set; dataset "none" leaves out Table 2's
    PPO runs, which train on a dataset's own RM and prompts and so carry dataset=X."""
    return {"algorithm": "ppo", "prompts": prompts, "dataset": "none"} | ({"reward_model": reward_model} if reward_model else {})


def dpo(dataset: str) -> dict:
    return {"algorithm": "dpo", "dataset": dataset}


REWARD_MODELS = {"13B UltraF.": "uf_13b", "13B Mix": "mix_13b", "70B UltraF.": "uf_70b", "70B Mix": "mix_70b"}

# --------------------------------------------------------------------------------------------- Table 1
TABLE1_DATASETS = {  # paper row label -> conf/dataset entry
    "SHP-2": "shp2", "StackExchange": "stack_exchange", "PRM800k": "prm800k",
    "Chatbot Arena (2023)": "chatbot_arena_2023", "Chatbot Arena (2024)": "chatbot_arena_2024",
    "AlpacaF. Human Pref": "alpaca_farm_human", "HH-RLHF": "hh_rlhf", "HelpSteer": "helpsteer",
    "AlpacaF. GPT-4 Pref": "alpaca_farm_gpt4", "Capybara 7k": "capybara", "Orca Pairs": "orca", "Nectar": "nectar",
    "UltraF. (overall)": "ultrafeedback_overall", "UltraF. (fine-grained)": "ultrafeedback_fg",
}
TABLE1 = Table(
    "table1", "Table 1: DPO on each preference dataset", "table1_preference_data.csv",
    ("source",), category_columns(),
    (row("Llama 2 base", **LLAMA2_BASE), row("Tulu 2 (SFT)", **SFT),
     *(row(label, **dpo(ds)) for label, ds in TABLE1_DATASETS.items())),
    info_columns=("group", "samples"),
)

# --------------------------------------------------------------------------------------------- Table 2
TABLE2_DATASETS = {  # paper label -> dataset (60,908-row subsets of the large sets; ChatArena 2023 and UF-FG whole)
    "StackExchange": "stack_exchange_60k", "ChatArena (2023)": "chatbot_arena_2023", "HH-RLHF": "hh_rlhf_60k",
    "Nectar": "nectar_60k", "UltraFeedback (FG)": "ultrafeedback_fg",
}
# PPO with `algorithm.table2=true`: reward model trained on the dataset, prompts from it (its run carries dataset=X;
# the options as sweeps/table2.yaml sets them). The UltraFeedback PPO row is the 13B UltraFeedback RM run with UF prompts.
TABLE2_PPO = ("algorithm.table2=true", "reward_model=none", "prompts=from_dataset")
_T2_PAIRS = [(row((label, "PPO"), **ppo("uf_13b")) if ds == "ultrafeedback_fg" else
              row((label, "PPO"), TABLE2_PPO, algorithm="ppo", dataset=ds),
              row((label, "DPO"), **dpo(ds))) for label, ds in TABLE2_DATASETS.items()]
TABLE2 = Table(
    "table2", "Table 2: DPO vs PPO on the same data", "table2_dpo_vs_ppo.csv", ("data", "algorithm"),
    category_columns(),
    (*(r for ppo_row, dpo_row in _T2_PAIRS for r in (dpo_row, ppo_row)),
     mean_difference(("Avg. delta PPO - DPO", ""), _T2_PAIRS)),
)

# --------------------------------------------------------------------------------------------- Table 3
BEST_OF_N = {"algorithm": "best_of_n", "eval_suite": "bon"}
TABLE3 = Table(
    "table3", "Table 3: reward models: RewardBench, best-of-16, and PPO with each", "table3_reward_models.csv",
    ("reward_model",),
    (Column("rewardbench_score", "eval/rewardbench", {"eval_suite": "rewardbench", "algorithm": "none"}),
     Column("best_of_n_avg", CATEGORIES_MEAN, BEST_OF_N),
     # gain of best-of-N over the SFT model evaluated on the same subset of the suite
     Column("best_of_n_delta_over_sft", CATEGORIES_MEAN, BEST_OF_N, minus={"algorithm": "none", "eval_suite": "bon"}),
     Column("ppo_gsm_acc", "eval/gsm8k", ppo()),
     Column("ppo_alpacaeval2_winrate", "eval/alpaca_eval2", ppo()),
     Column("ppo_avg_all_evals", "average", ppo())),
    tuple(row(f"{label} RM", reward_model=rm) for label, rm in REWARD_MODELS.items()),
)

# --------------------------------------------------------------------------------------------- Table 4
TABLE4 = Table(
    "table4", "Table 4: PPO prompts (UltraFeedback vs mixed) with each reward model", "table4_prompts.csv",
    ("reward_model", "prompts"),
    (Column("gsm_acc", "eval/gsm8k"), Column("coding", "category/coding"), Column("avg_all_evals", "average")),
    (row(("Tulu 2 SFT", "-"), **SFT),
     *(row((label, p_label), **ppo(rm, prompts)) for label, rm in REWARD_MODELS.items()
       for p_label, prompts in (("UF", "uf"), ("Mixed", "mixed")))),
)

# --------------------------------------------------------------------------------------------- Table 5
TABLE5_ROWS = (
    row("Llama 2 Chat 13B", model="llama2_chat_13b", algorithm="none"),
    row("Nous Hermes 13B", model="nous_hermes_13b", algorithm="none"),
    row("Vicuna 1.5 13B", model="vicuna_13b", algorithm="none"),
    row("Llama 2 13B Base", **LLAMA2_BASE),
    row("Tulu 2 13B SFT", **SFT),
    row("Tulu 2+DPO 13B", **dpo("ultrafeedback_fg")),
    row("Tulu 2+PPO 13B (13B UFRM)", **ppo("uf_13b")),
    row("Tulu 2+PPO 13B (70B UFRM)", **ppo("uf_70b")),
    row("Tulu 2+PPO 13B (70B UFRM+MP)", **ppo("uf_70b", "mixed")),
)
TABLE5 = Table("table5", "Table 5: the full recipe against other 13B models", "table5_recipe.csv", ("model",),
               category_columns(), TABLE5_ROWS)

# --------------------------------------------------------------------------------------------- figures
# Figure 1: GSM8k and the Average as each component is added: SFT -> DPO -> PPO -> larger RM -> better prompts.
# Paper values where a table prints them (GSM8k of the DPO model is only drawn in the paper's figure).
def step(label: str, select: dict, gsm: tuple | None, average: tuple) -> Row:
    paper = {"average": ("table5", average, "average")} | ({"gsm_acc": ("table4", gsm, "gsm_acc")} if gsm else {})
    return Row((label,), (Term(1.0, select),), paper)


FIGURE1 = Table(
    "figure1", "Figure 1: GSM8k and overall performance as each component changes", None, ("step",),
    (Column("gsm_acc", "eval/gsm8k"), Column("average", "average")),
    (step("Tulu 2 SFT", SFT, ("Tulu 2 SFT", "-"), ("Tulu 2 13B SFT",)),
     step("+ DPO (UF)", dpo("ultrafeedback_fg"), None, ("Tulu 2+DPO 13B",)),
     step("PPO (13B UF RM)", ppo("uf_13b"), ("13B UltraF.", "UF"), ("Tulu 2+PPO 13B (13B UFRM)",)),
     step("+ 70B UF RM", ppo("uf_70b"), ("70B UltraF.", "UF"), ("Tulu 2+PPO 13B (70B UFRM)",)),
     step("+ mixed prompts", ppo("uf_70b", "mixed"), ("70B UltraF.", "Mixed"), ("Tulu 2+PPO 13B (70B UFRM+MP)",))),
)
# Figure 3: GSM8k accuracy of PPO by prompt source (rows) and reward model (columns). The paper trains these on 20K
# prompts of each source (Table 4: 60K); its values are only drawn, so no paper column.
FIGURE3_PROMPTS = {"UltraFeedback": "uf_20k", "GSM8k": "gsm8k", "Math": "math", "Mixed": "mixed_20k"}
FIGURE3 = Table(
    "figure3", "Figure 3: PPO GSM8k accuracy by prompt source and reward model", None, ("prompts",),
    tuple(Column(rm, "eval/gsm8k", {"reward_model": rm}) for rm in REWARD_MODELS.values()),
    tuple(row(label, **ppo(prompts=p)) for label, p in FIGURE3_PROMPTS.items()),
)

TABLES = (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5)
FIGURES = (FIGURE1, FIGURE3)
BY_NAME = {t.name: t for t in (*TABLES, *FIGURES)}


# --------------------------------------------------------------------------------------------- selectors
def cell_terms(r: Row, col: Column) -> list[Term]:
    """The terms of one cell: the row's selectors merged with the column's, then the column's subtrahend."""
    terms = [Term(t.weight, DEFAULTS | dict(t.select) | dict(col.select), t.overrides) for t in r.terms]
    return terms + ([Term(-1.0, DEFAULTS | dict(col.minus))] if col.minus is not None else [])


@cache
def model_entries() -> frozenset[str]:
    from harness.config.checks import options

    return frozenset(options("model"))


def played_by(model: str | None, base: str | None) -> str | None:
    """The model that plays `model` in the grid of base model `base`: its stand-in `<model>_<base>` where conf/model
    has one (the tiny grid's Llama 2 base and other 13B models, e.g. conf/model/llama2_13b_tiny.yaml), else itself."""
    if model is None or base is None or model == base:
        return model
    return f"{model}_{base}" if f"{model}_{base}" in model_entries() else model


def matches(select: Mapping[str, str], axes: Mapping[str, str], model: str | None, suite: str | None) -> bool:
    resolved = {BASE: model, MAIN: suite}
    want = {k: resolved.get(v, v) for k, v in select.items()}
    if "model" in want:
        want["model"] = played_by(want["model"], model)
    return all(axes.get(k) == v for k, v in want.items())


@cache
def explicit(axis: str, placeholder: str) -> frozenset[str]:
    """Values the grid names for an axis instead of its placeholder: the suites bon and rewardbench, the baseline
    models of Tables 1 and 5. Such a value is never a grid's base model or main suite."""
    return frozenset(t.select[axis] for table in (*TABLES, *FIGURES) for r in table.rows for c in table.columns
                     for t in cell_terms(r, c) if t.select[axis] != placeholder)


def grid_base(model: str | None) -> str | None:
    """The base model of the grid a run of `model` belongs to: None for a model the grid names (Llama 2 base...),
    B for its stand-in `<model>_B` (the tiny grid's), else the model itself."""
    for named in explicit("model", BASE):
        if model == named:
            return None
        if model and model.startswith(f"{named}_") and played_by(named, model[len(named) + 1:]) == model:
            return model[len(named) + 1:]
    return model


def memberships(axes: Mapping[str, str]) -> list[str]:
    """Names of the tables and figures a run with these axes fills a cell of, in the grid of its own base model."""
    model, suite = axes.get("model"), axes.get("eval_suite")
    base = grid_base(model)
    main = None if suite in explicit("eval_suite", MAIN) else suite
    return [table.name for table in (*TABLES, *FIGURES)
            if any(matches(t.select, axes, base, main)
                   for r in table.rows for c in table.columns for t in cell_terms(r, c))]


def membership_tag(name: str) -> str:
    """The MLflow tag saying a run is in a table or figure: table1 -> table_1, figure3 -> figure_3."""
    return name.replace("table", "table_").replace("figure", "figure_")


def table_tags(axes: Mapping[str, str]) -> dict[str, str]:
    """MLflow tags saying which tables a run belongs to.

    `table` = the first table the run fills (so the UI filter `tags.table = "1"` shows Table 1's runs), and one tag
    per table and figure it fills, `table_<n>` / `figure_<n>` = "1" (filter `tags.table_3 = "1"` for all of Table 3's
    runs, including those whose first table is an earlier one).
    """
    names = memberships(axes)
    tags = {membership_tag(name): "1" for name in names}
    tables = [BY_NAME[n].number for n in names if n.startswith("table")]
    return ({"table": tables[0]} if tables else {}) | tags
