"""open-instruct's prompts and answer extraction for the lm-eval benchmarks, as the paper's numbers were produced.

open-instruct (allenai/open-instruct, commit 959cbbc9d; paper-era main ea3467dbb where noted) puts the task
description and every shot in ONE user turn and prefills the assistant turn ("Answer:" for GSM8k, "A:" for BBH,
"The answer is:" for MMLU). A benchmark selects a builder with `options.prompt`; lm_eval_runner writes its text into
each row as `harness_prompt` and has lm-eval send that text as the only user turn (no description, no shots of its
own), with the configured `options.gen_prefix`. The builders read the same data open-instruct read: the official
BIG-Bench-Hard CoT prompts and open-instruct's GSM exemplars (harness/assets/openinstruct/, see its README).
"""

from __future__ import annotations

import functools
import json
import re

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from harness.data.preferences import asset_path

PROMPT_FIELD = "harness_prompt"


def format_subject(subject: str) -> str:
    """open-instruct eval/mmlu/run_eval.py `format_subject`: every word preceded by a space (so "about  x y")."""
    return "".join(" " + word for word in subject.split("_"))


def mmlu_prompt(row: dict, part: str | None) -> str:
    """eval/mmlu/run_eval.py `gen_prompt` (0 shots: the header only) + `format_example(include_answer=False)`."""
    subject = part or row["subject"]
    header = f"The following are multiple choice questions (with answers) about {format_subject(subject)}.\n\n"
    body = row["question"] + "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", row["choices"]))
    return header + body + "\nAnswer:"


@functools.lru_cache(maxsize=None)
def gsm_exemplars() -> tuple[dict, ...]:
    return tuple(json.loads(asset_path("openinstruct/gsm8k_exemplars.json").read_text())["exemplars"])


def gsm8k_prompt(row: dict, part: str | None) -> str:
    """eval/gsm/run_eval.py `main`: with --n_shot 8 all eight exemplars in file order (random.sample only when there
    are more), CoT answers; the user turn is the prefix + "Question: " + the stripped question."""
    shots = "\n\n".join(f"Question: {e['question']}\nAnswer: {e['cot_answer']}" for e in gsm_exemplars())
    return "Answer the following questions.\n\n" + shots + "\n\n" + "Question: " + row["question"].strip()


@functools.lru_cache(maxsize=None)
def bbh_task_prompt(task: str) -> str:
    """eval/bbh/run_eval.py: the CoT prompt file minus its first two lines (canary string and "-----")."""
    path = asset_path(f"openinstruct/bbh_cot_prompts/{task}.txt")
    if not path.exists():
        raise FileNotFoundError(f"no BIG-Bench-Hard CoT prompt for task {task!r} ({path})")
    with path.open() as f:
        return "".join(f.readlines()[2:])


def bbh_prompt(row: dict, part: str | None) -> str:
    """eval/bbh/run_eval.py (chat format): the task prompt, stripped, then "\\n\\nQ: " + the input."""
    return bbh_task_prompt(part).strip() + "\n\nQ: " + row["input"]


PROMPTS = {"mmlu": mmlu_prompt, "gsm8k": gsm8k_prompt, "bbh": bbh_prompt}


def add_prompts(rows: list[dict], builder: str, part: str | None) -> list[dict]:
    if builder not in PROMPTS:
        raise ValueError(f"options.prompt={builder!r}; valid: {sorted(PROMPTS)}")
    return [{**row, PROMPT_FIELD: PROMPTS[builder](row, part)} for row in rows]


# --------------------------------------------------------------------------------------------- answer extraction
@register_filter("harness_answer_is_or_output")
class AnswerIsOrOutput(Filter):
    """eval/bbh/run_eval.py: the first `[t|T]he answer is (.*?)\\.` group, stripped; with no match the whole output,
    stripped (lm-eval's regex filter would give "[invalid]")."""

    PATTERN = re.compile(r"[t|T]he answer is (.*?)\.")

    def apply(self, resps, docs):
        def pick(text: str) -> str:
            found = self.PATTERN.search(text)
            return found.group(1).strip() if found else text.strip()

        return [[pick(r) for r in group] for group in resps]


@register_filter("harness_last_number")
class LastNumber(Filter):
    """eval/gsm/run_eval.py: thousands commas removed, then the last `[-+]?\\d*\\.\\d+|\\d+`; with none, the output."""

    def apply(self, resps, docs):
        def pick(text: str) -> str:
            text = re.sub(r"(\d),(\d)", r"\1\2", text)
            numbers = re.findall(r"[-+]?\d*\.\d+|\d+", text)
            return numbers[-1] if numbers else text

        return [[pick(r) for r in group] for group in resps]
