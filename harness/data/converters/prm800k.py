"""PRM800k phase 2 (`openai/prm800k` on GitHub, `prm800k/data/phase2_train.jsonl`; not on the hub): MATH problems with
model solutions whose steps humans labelled.

One row (layout of the released JSON lines; texts abbreviated):
    {"labeler": "340d89bc-...", "timestamp": "2022-07-17T16:56:51", "generation": 9,
     "is_quality_control_question": false, "is_initial_screening_question": false,
     "question": {"problem": "How many vertical asymptotes does the graph of $y=\\frac{2}{x^2+x-6}$ have?",
                  "ground_truth_solution": "The denominator ... factors ... $\\boxed{2}$ vertical asymptotes.",
                  "ground_truth_answer": "2",
                  "pre_generated_steps": ["I want to find the values of x ...", "..."],
                  "pre_generated_answer": "2", "pre_generated_verifier_score": 0.95},
     "label": {"steps": [{"completions": [{"text": "...", "rating": 1, "flagged": false}], "human_completion": null,
                          "chosen_completion": 0}],
               "total_time": 278270, "finish_reason": "found_error"}}

Rule (protocol): rows are grouped by problem; chosen = the ground-truth solution, rejected = the steps (joined by
newlines) of a random model solution whose label finished with `found_error`. Problems without one are skipped.
"""

from __future__ import annotations

from harness.data.converters.base import Converter, Skip, pair, single_turn


def convert(rows, ctx):
    problems: dict[str, list[dict]] = {}
    for r in rows:  # first-seen order of the (shuffled) rows, so the seed fixes which problem draws first
        problem = (r["question"] or {}).get("problem")
        if not problem:
            yield Skip("missing_problem", bad=True, detail=f"labeler={r.get('labeler')!r}")
            continue
        problems.setdefault(problem, []).append(r)
    for problem, samples in problems.items():
        wrong = [s for s in samples if (s.get("label") or {}).get("finish_reason") == "found_error"]
        if not wrong:
            yield Skip("no_found_error_solution")
            continue
        steps = ctx.rng.choice(wrong)["question"].get("pre_generated_steps")
        rejected = "\n".join(steps) if steps else None
        truth = samples[0]["question"].get("ground_truth_solution")
        yield pair(single_turn(problem, truth), single_turn(problem, rejected))


CONVERTER = Converter(convert, columns=("question", "label"))
