"""RewardBench-style direct evaluation of a reward model (Table 3's RewardBench column).

    python -m harness algorithm=none model=tulu2_13b reward_model=uf_13b eval=rewardbench
    python -m harness algorithm=none reward_model=tiny eval=rewardbench_tiny       # bundled fixture, CPU

Data in `allenai/reward-bench`'s schema (split `filtered`), one row:
    {"prompt": "How do I make a cake?", "chosen": "Mix flour, ...", "chosen_model": "gpt-4",
     "rejected": "I can't help.", "rejected_model": "llama-2", "subset": "alpacaeval-easy", "id": 7}
plus the "prior sets" of `allenai/preference-test-sets` (anthropic_helpful, anthropic_hhh, shp, summarize; their
`prompt` is a list of turns). A pair is right when the chosen response scores strictly higher.

Aggregation as RewardBench v1 does it (allenai/reward-bench: rewardbench/constants.py and the leaderboard's
analysis code): a section (Chat, Chat Hard, Safety, Reasoning) is the mean of its subsets' accuracies weighted by
the fixed EXAMPLE_COUNTS (math-prm counted as 984 so math weighs as much as the six code subsets together); Prior Sets
is the plain mean of its sets; the Score is the mean of the sections and Prior Sets weighted 2:2:2:2:1 ("Prior Sets
(0.5 weight)"), over the parts present. Whether the paper's RewardBench numbers include the prior sets is not stated
(inferred: the leaderboard Score of mid-2024 did): `options.prior_sets: []` leaves them out.

The score reaches results as benchmark `rewardbench` (category `reward_model`: reported as `eval/rewardbench`, never
part of the six categories or the Average); it is keyed by the reward model, not the policy.
"""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import open_dict

from harness.eval.sources import load_rows, write_jsonl
from harness.eval.suite import outcome
from harness.planning import reward_benchmark_stage, scores_reward_model
from harness.train.reward import RewardScorer


CATEGORY = "reward_model"
SECTIONS = {
    "chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "chat_hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond", "donotanswer"],
    "reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}
EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28, "mt-bench-med": 40,
    "mt-bench-hard": 37, "math-prm": 984, "refusals-dangerous": 100, "refusals-offensive": 100, "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "xstest-should-refuse": 250, "xstest-should-respond": 154, "donotanswer": 136, "hep-cpp": 164, "hep-go": 164,
    "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}
SECTION_WEIGHT, PRIOR_WEIGHT = 2.0, 1.0


# ------------------------------------------------------------------------------------------------- scoring rule
def accuracy_by_subset(correct: list[bool], subsets: list[str]) -> dict[str, float]:
    totals: dict[str, list[int]] = {}
    for ok, subset in zip(correct, subsets):
        totals.setdefault(subset, [0, 0])
        totals[subset][0] += int(ok)
        totals[subset][1] += 1
    return {s: right / n for s, (right, n) in totals.items()}


def aggregate(core: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """Section accuracies, Prior Sets and the Score (0-1) from per-subset accuracies."""
    out = {}
    for section, subsets in SECTIONS.items():
        present = [s for s in subsets if s in core]
        if present:
            out[section] = sum(core[s] * EXAMPLE_COUNTS[s] for s in present) / sum(EXAMPLE_COUNTS[s] for s in present)
    parts = [(out[s], SECTION_WEIGHT) for s in SECTIONS if s in out]
    if prior:
        out["prior_sets"] = sum(prior.values()) / len(prior)
        parts.append((out["prior_sets"], PRIOR_WEIGHT))
    if not parts:
        raise ValueError("RewardBench: no row belongs to a known subset or prior set; "
                         f"known subsets: {sorted(EXAMPLE_COUNTS)}")
    out["score"] = sum(v * w for v, w in parts) / sum(w for _, w in parts)
    return out


# ------------------------------------------------------------------------------------------------- data
def _turns(prompt) -> list[dict]:
    """RewardBench prompts are a string; the prior sets' are a list of turns (strings, user first, or messages)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [t if isinstance(t, dict) else {"role": "user" if i % 2 == 0 else "assistant", "content": t}
            for i, t in enumerate(prompt)]


def _answer(value) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return [value[-1]]


def pairs(rows: list[dict], subset: str | None = None) -> list[dict]:
    unknown = [i for i, r in enumerate(rows) if not all(k in r for k in ("prompt", "chosen", "rejected"))]
    if unknown:
        raise ValueError(f"RewardBench row {unknown[0]} lacks prompt/chosen/rejected: columns {sorted(rows[unknown[0]])}")
    return [{"prompt": _turns(r["prompt"]), "chosen": _answer(r["chosen"]), "rejected": _answer(r["rejected"]),
             "subset": subset or r["subset"], "id": r.get("id", i)} for i, r in enumerate(rows)]


def load(bench, mirror: str | None = None) -> tuple[list[dict], list[dict]]:
    """Core rows and prior-set rows (each prior set is a split of its own dataset)."""
    core = pairs(load_rows(bench, mirror))
    opts = bench.options
    prior = []
    for name in opts.get("prior_sets") or []:
        source = copy.deepcopy(bench)
        source.split, source.hub_id, source.hub_config = name, opts.get("prior_sets_hub_id"), None
        source.files, source.revision = opts.get("prior_sets_files"), opts.get("prior_sets_revision")
        prior += pairs(load_rows(source, mirror), subset=name)
    return core, prior


# ------------------------------------------------------------------------------------------------- running
def run(bench, scorer: RewardScorer, out_dir: Path, mirror: str | None = None) -> dict:
    core, prior = load(bench, mirror)
    rows = core + prior
    chosen = scorer.score_conversations([r["prompt"] + r["chosen"] for r in rows])
    rejected = scorer.score_conversations([r["prompt"] + r["rejected"] for r in rows])
    correct = (chosen > rejected).tolist()
    write_jsonl([{"id": r["id"], "subset": r["subset"], "score_chosen": c, "score_rejected": j, "correct": ok}
                 for r, c, j, ok in zip(rows, chosen.tolist(), rejected.tolist(), correct)], out_dir / "samples.jsonl")
    n_core = len(core)
    by_core = accuracy_by_subset(correct[:n_core], [r["subset"] for r in core])
    by_prior = accuracy_by_subset(correct[n_core:], [r["subset"] for r in prior])
    metrics = aggregate(by_core, by_prior)
    return {"score": metrics["score"] * bench.scale, "metric": "score",
            "metrics": metrics | {f"subset/{k}": v for k, v in (by_core | by_prior).items()},
            "n": len(rows), "samples": "samples.jsonl"}


def split_suite(eval_cfg):
    """(the suite without reward-model benchmarks, {key: reward-model benchmark})."""
    rm_keys = [k for k, b in eval_cfg.benchmarks.items() if scores_reward_model(b)]
    policy_eval = copy.deepcopy(eval_cfg)
    with open_dict(policy_eval):
        for key in rm_keys:
            del policy_eval.benchmarks[key]
    return policy_eval, {k: eval_cfg.benchmarks[k] for k in rm_keys}


def load_scorer(reward_model, batch_size: int, dtype: str) -> RewardScorer:
    """The reward model frozen in `dtype` (the run's model.dtype: bf16 on GPUs)."""
    return RewardScorer.load(reward_model.ref, reward_model.chat_template, batch_size, dtype)


def evaluate(benchmarks: dict, reward_model, stages_root: str, batch_size: int, mirror: str | None = None,
             dtype: str = "float32") -> dict:
    """Each reward-model benchmark as its own stage, keyed by the reward model; a failure is recorded, not raised."""
    scorer: list[RewardScorer] = []

    def work(d, b):
        if not scorer:
            scorer.append(load_scorer(reward_model, batch_size, dtype))
        return run(b, scorer[0], d, mirror)

    out = {}
    for key, bench in benchmarks.items():
        stage = reward_benchmark_stage(bench, reward_model, stages_root, dtype)
        out[key] = outcome(key, bench, stage, lambda b=bench, st=stage: st.run(lambda d: work(d, b),
                                                                              label=f"benchmark {key} ({b.name})"))
    return out
