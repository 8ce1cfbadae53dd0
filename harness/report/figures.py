"""Figures 1 and 3 as PNG, drawn from the same built cells as their CSV and Markdown.

Figure 1: GSM8k accuracy and the Average at each step SFT -> DPO -> PPO -> larger RM -> better prompts (bars:
reproduced, with their 95% interval as error bars; black diamonds: the paper's numbers where its tables print them).
Figure 3: PPO GSM8k accuracy by prompt source (groups) and reward model (bars, with intervals). A cell with no run is
drawn as the word "missing", never as a zero bar. Learning curves (algorithm.eval_every): each run's curve-suite
scores against the optimiser step.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.report.build import TableResult

MISSING_STYLE = {"rotation": 90, "ha": "center", "va": "bottom", "fontsize": 7, "color": "0.45"}


def _bars(ax, xs, cells, width, color):
    values = [c.value for c in cells]
    ax.bar([x for x, v in zip(xs, values) if v is not None], [v for v in values if v is not None], width, color=color)
    for x, cell in zip(xs, cells):
        if cell.value is None:
            ax.text(x, 1, "missing", **MISSING_STYLE)
            continue
        if cell.interval is not None:
            lo, hi = cell.interval
            ax.errorbar([x], [cell.value], yerr=[[cell.value - lo], [hi - cell.value]], fmt="none", ecolor="k",
                        elinewidth=1, capsize=3)
        if cell.n > 1:
            ax.text(x, cell.interval[1] if cell.interval else cell.value, f"×{cell.n}", ha="center", va="bottom",
                    fontsize=7)


def figure1(result: TableResult) -> Figure:
    fig = Figure(figsize=(10, 4), layout="constrained")
    labels = [r.key[0] for r, _, _ in result.rows]
    xs = list(range(len(labels)))
    for ax, (key, title) in zip(fig.subplots(1, 2), (("gsm_acc", "GSM8k accuracy"), ("average", "Average (6 categories)"))):
        cells = [cells[key] for _, _, cells in result.rows]
        _bars(ax, xs, cells, 0.6, "tab:blue")
        paper = [(x, c.paper) for x, c in zip(xs, cells) if c.paper is not None]
        ax.plot([x for x, _ in paper], [p for _, p in paper], "kD")
        ax.set_xticks(xs, labels, rotation=20, ha="right", fontsize=8)
        ax.set(xlim=(-0.5, len(xs) - 0.5), ylim=(0, 100), title=title)
        ax.legend(handles=[Patch(color="tab:blue", label="reproduced (95% interval)"),
                           Line2D([], [], color="k", marker="D", linestyle="", label="paper")],
                  loc="upper left", fontsize=8)
    fig.suptitle(f"{result.table.title} (base model {result.model}, suite {result.suite})", fontsize=10)
    return fig


def figure3(result: TableResult) -> Figure:
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    groups = [r.key[0] for r, _, _ in result.rows]
    columns = [c.key for c in result.table.columns]
    width = 0.8 / len(columns)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for i, key in enumerate(columns):
        xs = [g + (i - (len(columns) - 1) / 2) * width for g in range(len(groups))]
        _bars(ax, xs, [cells[key] for _, _, cells in result.rows], width, colors[i % len(colors)])
    ax.set_xticks(range(len(groups)), groups)
    ax.set(xlim=(-0.5, len(groups) - 0.5), ylim=(0, 100), ylabel="GSM8k accuracy")
    ax.legend(handles=[Patch(color=colors[i % len(colors)], label=key) for i, key in enumerate(columns)],
              title="reward model", fontsize=8)
    ax.set_title(f"{result.table.title}\n(base model {result.model}, suite {result.suite})", fontsize=10)
    return fig


DRAW = {"figure1": figure1, "figure3": figure3}


def curves(runs: list) -> Figure:
    """One panel per curve metric: each run's score against the optimiser step (its last point: the final policy)."""
    metrics = sorted({m for r in runs for scores in r.curve.values() for m in scores})
    fig = Figure(figsize=(4 * len(metrics), 3.5), layout="constrained")
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
        for i, run in enumerate(runs):
            points = sorted((step, s[metric]) for step, s in run.curve.items() if s.get(metric) is not None)
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=f"C{i}", label=run.run_id)
        ax.set(title=metric, xlabel="optimiser step", ylim=(0, 100))
    fig.axes[0].legend(fontsize=6)
    fig.suptitle("Learning curves (algorithm.eval_every)", fontsize=10)
    return fig


def save(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=120)
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def write(result: TableResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return save(DRAW[result.table.name](result), out / f"{result.table.name}.png")
