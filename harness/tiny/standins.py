"""Tiny stand-ins for the paper's preference sources and prompt sets: the data of the tiny grid.

    python -m harness.tiny.standins        # rewrite harness/assets/tiny/grid/*.jsonl (deterministic)

`scale=tiny` swaps every paper entry a table names for one of these (conf/dataset_scale/<entry>_tiny.yaml,
conf/prompts_scale/<entry>_tiny.yaml), so `python -m harness -m +sweep=tiny_all` runs every table's grid on a CPU.
Each Table 1 source gets a few dozen pairs in the tulu-2.5 layout of harness.tiny.data, drawn from its own mix of the
bundled task templates with its own seed (a "flavour" loosely after the source's domain: PRM800k is arithmetic,
StackExchange code, HH-RLHF refusals...), so rows of a table differ. Nothing here is the source's real data: these
files exist so that each cell of a table is filled by the run its row names, not to reproduce a number.

The files live in a sub-folder on purpose: the tiny model's tokenizer and stage key read only harness/assets/tiny/*.jsonl.
"""

from __future__ import annotations

import json
import random

from harness.tiny import data as tiny

GRID_DIR = tiny.TINY_DIR / "grid"
TASKS = {f.__name__.lstrip("_"): f for f in tiny.TASKS}  # arithmetic, word_problem, capital, reverse, code, listing
TRAIN_PAIRS, TEST_PAIRS = 48, 16

# conf/dataset entry -> (tasks its pairs are drawn from, share of refusals among the rejected answers). Inferred
# flavours, chosen only so that the sources differ.
SOURCES = {
    "shp2": (("reverse", "listing", "capital"), 0.2),
    "stack_exchange": (("code", "reverse"), 0.1),
    "prm800k": (("arithmetic", "word_problem"), 0.0),
    "chatbot_arena_2023": (("capital", "listing", "arithmetic", "code"), 0.4),
    "chatbot_arena_2024": (("code", "word_problem", "listing"), 0.4),
    "alpaca_farm_human": (("listing", "capital"), 0.3),
    "hh_rlhf": (("capital", "listing", "reverse"), 0.8),
    "helpsteer": (("word_problem", "listing", "code"), 0.2),
    "alpaca_farm_gpt4": (("listing", "capital", "arithmetic"), 0.3),
    "capybara": (("word_problem", "code", "capital"), 0.5),
    "orca": (("arithmetic", "word_problem", "reverse"), 0.1),
    "nectar": (("capital", "code", "listing", "arithmetic"), 0.6),
    "ultrafeedback_overall": (tuple(TASKS), 0.5),
    "ultrafeedback_fg": (tuple(TASKS), 0.5),
}
# Table 2's 60,908-pair subsets: the first half of their source's tiny pairs (same held-out pairs).
SUBSETS = {"stack_exchange_60k": "stack_exchange", "hh_rlhf_60k": "hh_rlhf", "nectar_60k": "nectar"}
# The Mix RM data (conf/dataset/mix.yaml): the union of its components' tiny training pairs.
MIX = ("helpsteer", "prm800k", "hh_rlhf_60k", "nectar_60k", "stack_exchange_60k", "ultrafeedback_fg")

# conf/prompts entry -> tasks of its prompts and how many: 60K sets 24 prompts, 20K sets 16 (each one PPO iteration of
# conf/algorithm_model/ppo_tiny: 2 epochs x n prompts // 32 rollouts).
PROMPTS = {
    "uf": (tuple(TASKS), 24),
    "uf_20k": (tuple(TASKS), 16),
    "mixed": (tuple(TASKS) + ("arithmetic", "word_problem", "code", "code"), 24),
    "mixed_20k": (tuple(TASKS) + ("arithmetic", "word_problem", "code", "code"), 16),
    "math": (("arithmetic", "word_problem"), 16),
    "gsm8k": (("word_problem",), 16),
}


def pairs(source: str, n: int, seed: int) -> list[dict]:
    tasks, refusals = SOURCES[source]
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt, good, bad = TASKS[rng.choice(tasks)](rng)
        rejected = tiny.REFUSAL if rng.random() < refusals else bad
        rows.append({"id": f"{source}_{seed}_{i}", "source": source, "prompt": prompt,
                     "chosen": tiny._conversation(prompt, f"Sure! {good}"),
                     "rejected": tiny._conversation(prompt, rejected)})
    return rows


def source_seed(source: str) -> int:
    return 100 + 2 * list(SOURCES).index(source)


def preference_files() -> dict[str, list[dict]]:
    out = {}
    for source in SOURCES:
        seed = source_seed(source)
        out[f"{source}_train.jsonl"] = pairs(source, TRAIN_PAIRS, seed)
        out[f"{source}_test.jsonl"] = pairs(source, TEST_PAIRS, seed + 1)
    for subset, parent in SUBSETS.items():
        out[f"{subset}_train.jsonl"] = out[f"{parent}_train.jsonl"][: TRAIN_PAIRS // 2]
        out[f"{subset}_test.jsonl"] = out[f"{parent}_test.jsonl"]
    out["mix_train.jsonl"] = [r for c in MIX for r in out[f"{c}_train.jsonl"]]
    out["mix_test.jsonl"] = [r for c in MIX[:2] for r in out[f"{c}_test.jsonl"]]
    return out


def prompt_files() -> dict[str, list[dict]]:
    out = {}
    for i, (name, (tasks, n)) in enumerate(PROMPTS.items()):
        rng = random.Random(500 + i)
        out[f"prompts_{name}.jsonl"] = [
            {"id": f"{name}_{j}", "source": name, "messages": [{"role": "user", "content": TASKS[rng.choice(tasks)](rng)[0]}]}
            for j in range(n)]
    return out


def files() -> dict[str, str]:
    """File name under GRID_DIR -> its content."""
    rows = preference_files() | prompt_files()
    return {name: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs) for name, rs in sorted(rows.items())}


def main() -> None:
    GRID_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (GRID_DIR / name).write_text(text)
    print(f"wrote {len(files())} files to {GRID_DIR}")


if __name__ == "__main__":
    main()
