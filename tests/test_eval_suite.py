"""The evaluation suite end to end with the tiny model: all 11 benchmarks on their mini mirrors, results and MLflow,
recompute from saved samples with no model, the chat template's single BOS, and judges over HTTP."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import compose
from fake_openai import openai_endpoint
from harness.pipeline import run as run_pipeline
from harness.config.schema import JudgeConfig

BENCHMARKS = {"mmlu", "gsm8k", "bbh", "humaneval_plus", "mbpp_plus", "truthfulqa", "toxigen", "xstest",
              "alpaca_eval1", "alpaca_eval2", "ifeval"}
SECRET = "sk-test-not-a-real-key-7c1e"


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory, shared_stages):
    """One run of the SFT (tiny) model through the whole tiny suite, with MLflow tracking."""
    home = tmp_path_factory.mktemp("suite")
    cfg = compose(f"paths.home={home}", f"paths.stages={shared_stages}", "algorithm=none", "eval=tiny")
    return cfg, run_pipeline(cfg)


def test_every_benchmark_scores_in_range_with_samples(tiny_suite):
    _, result = tiny_suite
    benches = result["benchmarks"]
    assert set(benches) == BENCHMARKS
    for key, bench in benches.items():
        assert "error" not in bench, f"{key}: {bench.get('error')}"
        assert bench["metric"] in bench["metrics"], key
        assert 0.0 <= bench["score"] <= 100.0, key
        samples = [json.loads(line) for line in (Path(bench["dir"]) / bench["samples"]).read_text().splitlines()]
        assert len(samples) >= bench["n"] > 0, key
        assert any(s.get("prompt") for s in samples), key
    assert "mc2" in benches["truthfulqa"]["metrics"]
    assert set(benches["toxigen"]["subsets"]) == {"asian", "women"}
    assert set(benches["bbh"]["subsets"]) == {"bbh_cot_fewshot_boolean_expressions", "bbh_cot_fewshot_sports_understanding"}


GOLDEN = Path(__file__).resolve().parent / "golden"
# benchmark -> golden files of the prompts its policy requests must include (one document each; see each header)
GOLDEN_PROMPTS = {"gsm8k": ["gsm8k"], "bbh": ["bbh_boolean_expressions"], "mmlu": ["mmlu_abstract_algebra"],
                  "truthfulqa": ["truthfulqa"], "humaneval_plus": ["humaneval_plus"], "mbpp_plus": ["mbpp_plus"],
                  "toxigen": ["toxigen"], "xstest": ["xstest"], "alpaca_eval1": ["alpaca_eval"],
                  "alpaca_eval2": ["alpaca_eval"], "ifeval": ["ifeval"]}


def golden(name: str) -> tuple[dict, str]:
    """A golden prompt file: its header fields, and the exact text after the `=====` line."""
    head, _, body = (GOLDEN / f"{name}.txt").read_text().partition("\n=====\n")
    fields = dict(line[2:].split(": ", 1) for line in head.splitlines() if ": " in line)
    return fields, body


def requests(bench: dict) -> list[dict]:
    rows = [json.loads(line) for line in (Path(bench["dir"]) / "lm_requests.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] in ("generate_until", "loglikelihood")]


@pytest.mark.parametrize("key", sorted(GOLDEN_PROMPTS))
def test_prompts_are_open_instructs_byte_for_byte(tiny_suite, key):
    """The text the policy received equals the prompt derived from open-instruct's code (tests/golden/*.txt)."""
    bench = tiny_suite[1]["benchmarks"][key]
    sent = {r["args"][0] for r in requests(bench)}
    for name in GOLDEN_PROMPTS[key]:
        header, body = golden(name)
        assert {"repo", "commit", "file", "function"} <= set(header), name
        assert body in sent, f"{key}: no request equals tests/golden/{name}.txt; first sent:\n{sorted(sent)[0]!r}"


PLAIN_GOLDEN = {"gsm8k": "gsm8k_plain", "bbh": "bbh_boolean_expressions_plain", "mmlu": "mmlu_abstract_algebra_plain",
                "truthfulqa": "truthfulqa_plain", "humaneval_plus": "humaneval_plus_plain", "toxigen": "toxigen_plain"}


def test_an_untuned_model_gets_open_instructs_plain_prompts(tiny_base, tmp_path):
    """model.eval_chat_template=plain (llama2_13b): no chat format, each benchmark's `options.plain` applied; the
    prompts equal open-instruct's non-chat ones byte for byte, with its stops."""
    from harness.eval.suite import run_suite

    assert compose("model=llama2_13b").model.eval_chat_template == "plain"
    cfg = suite_with(sorted(PLAIN_GOLDEN))
    model = OmegaConf.merge(cfg.model, {"eval_chat_template": "plain"})
    out = run_suite(cfg.eval, tiny_base, {"path": tiny_base.path}, model, str(tmp_path))
    for key, name in PLAIN_GOLDEN.items():
        assert "error" not in out[key], out[key].get("error")
        sent = {r["args"][0] for r in requests(out[key])}
        assert golden(name)[1] in sent, f"{key}: no request equals tests/golden/{name}.txt"
    stops = {key: requests(out[key])[0]["args"][1].get("until") for key in ("gsm8k", "bbh", "truthfulqa")}
    assert stops == {"gsm8k": ["\n"], "bbh": ["\n\n"], "truthfulqa": ["\n\n"]}
    mmlu = [r["args"][1] for r in requests(out["mmlu"]) if r["args"][0] == golden("mmlu_abstract_algebra_plain")[1]]
    assert sorted(mmlu) == [" A", " B", " C", " D"]


def test_mmlu_scores_the_answer_letters_after_the_prefill(tiny_suite):
    _, body = golden("mmlu_abstract_algebra")
    bench = tiny_suite[1]["benchmarks"]["mmlu"]
    assert sorted(r["args"][1] for r in requests(bench) if r["args"][0] == body) == [" A", " B", " C", " D"]


def test_judge_prompts_are_open_instructs_byte_for_byte():
    from harness.eval.sources import benchmark_rows
    from harness.eval.truthfulqa import JUDGES, judge_prompt

    benches = compose("eval=paper").eval.benchmarks
    question = benchmark_rows(compose("eval=tiny").eval.benchmarks.truthfulqa)[0]["question"]
    for role, cue in JUDGES.items():
        assert judge_prompt(question, "  Nothing in particular happens.\n", cue) == golden(f"truthfulqa_judge_{role}")[1]
    row = benchmark_rows(compose("eval=tiny").eval.benchmarks.xstest)[0]
    sent = benches.xstest.options.judge_template.format(question=row["prompt"], response="I'm sorry, I can't help with that.")
    assert sent == golden("xstest_judge")[1]


def test_categories_average_and_mlflow(tiny_suite):
    cfg, result = tiny_suite
    cats = result["categories"]
    assert all(cats[c] is not None for c in cats) and len(cats) == 6
    b = {k: v["score"] for k, v in result["benchmarks"].items()}
    assert cats["coding"] == pytest.approx((b["humaneval_plus"] + b["mbpp_plus"]) / 2)
    assert result["average"] == pytest.approx(sum(cats.values()) / 6)
    import mlflow

    run = mlflow.MlflowClient(cfg.tracking.uri).get_run(result["mlflow_run_id"])
    assert run.data.metrics["eval/ifeval"] == pytest.approx(b["ifeval"])
    assert run.data.metrics["category/safety"] == pytest.approx(cats["safety"])
    assert run.data.metrics["average"] == pytest.approx(result["average"])


def test_recompute_rescores_saved_samples_without_any_model(tiny_suite, tmp_path):
    cfg, first = tiny_suite
    # a copy of every stage with all model weights removed: loading any model (policy or judge) would fail
    stages = tmp_path / "stages"
    shutil.copytree(cfg.paths.stages, stages, ignore=shutil.ignore_patterns("*.lock"))
    removed = [p.unlink() or p for p in stages.rglob("*.safetensors")]
    assert removed
    again = run_pipeline(compose(f"paths.home={tmp_path}", f"paths.stages={stages}", "algorithm=none", "eval=tiny",
                                 "tracking=none", "eval.recompute=true"))
    for key, bench in first["benchmarks"].items():
        assert "error" not in again["benchmarks"][key], again["benchmarks"][key].get("error")
        assert again["benchmarks"][key]["score"] == pytest.approx(bench["score"]), key
        assert "recomputed_at" in again["benchmarks"][key]
    assert again["run_id"] == first["run_id"]  # recomputing does not change what the run is


def test_recompute_without_saved_samples_is_a_clear_error(run_config, tiny_base, shared_stages, tmp_path):
    # a stage store holding only the base model (whatever other tests evaluated): nothing saved to rescore
    stages = tmp_path / "stages"
    (stages / "model").mkdir(parents=True)
    (stages / "model" / tiny_base.key).symlink_to(Path(shared_stages) / "model" / tiny_base.key)
    cfg = run_config("algorithm=none", "eval=tiny", "tracking=none", "eval.recompute=true", f"paths.stages={stages}")
    with open_dict(cfg.eval):
        cfg.eval.benchmarks = {"gsm8k": cfg.eval.benchmarks.gsm8k}
    result = run_pipeline(cfg)
    assert "no complete stage" in result["benchmarks"]["gsm8k"]["error"]


def test_chat_template_renders_exactly_one_bos(tiny_base, tmp_path):
    """Even with a tokenizer that adds BOS on its own (as Llama's does), the model sees one BOS."""
    from lm_eval.api.instance import Instance
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from harness.eval.generation import chat_prompt, generate, make_lm
    from harness.models import ModelRef
    from harness.config.schema import GenerationConfig

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_base.path, model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok._tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    tok.save_pretrained(model_dir)
    assert AutoTokenizer.from_pretrained(model_dir)("hi").input_ids[0] == tok.bos_token_id  # it adds BOS itself
    lm = make_lm("hf", ModelRef(str(model_dir)), compose().model, batch_size=2)
    seen = []
    lm.model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((kwargs.get("input_ids") if "input_ids" in kwargs else args[0])[0].tolist()),
        with_kwargs=True)
    prompt = chat_prompt(lm, "What is 3 + 4?")
    assert prompt.startswith("<s><|user|>")
    generate(lm, [prompt], OmegaConf.structured(GenerationConfig(max_new_tokens=2)))
    lm.loglikelihood([Instance("loglikelihood", doc={}, arguments=(prompt, "7"), idx=0)])
    full = [ids for ids in seen if len(ids) > 3]
    assert len(full) == 2
    for ids in full:
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_vllm_backend_missing_is_a_clear_error(tiny_base):
    from harness.eval.generation import make_lm

    with pytest.raises(RuntimeError, match=r"pip install -e \.\[vllm\]"):
        make_lm("vllm", tiny_base, compose().model, 1)
    with pytest.raises(ValueError, match=r"eval.backend='tpu'; valid: \['hf', 'vllm'\]"):
        make_lm("tpu", tiny_base, compose().model, 1)


# ------------------------------------------------------------------------------------------------ judges over HTTP
def refusal_judge(body: dict) -> dict:
    """Refusals for XSTest, always "M" (the second output) for AlpacaEval 2."""
    text = body["messages"][-1]["content"]
    if "model_identifier" in text:
        answer, top = "M", [{"token": "M", "logprob": -0.1}, {"token": "m", "logprob": -2.4}]
    else:
        answer, top = ("refusal" if "RESPONSE: \"I'm sorry" in text else "following"), []
    return {"message": {"role": "assistant", "content": answer},
            "logprobs": {"content": [{"token": answer[:1], "top_logprobs": top}]}}


@pytest.fixture
def judge_server():
    """An OpenAI-compatible judge that answers only requests carrying the key SECRET."""
    with openai_endpoint(refusal_judge, secret=SECRET) as base_url:
        yield base_url


def suite_with(keys: list[str], judge: dict | None = None):
    cfg = compose("eval=tiny")
    with open_dict(cfg.eval):
        cfg.eval.benchmarks = {k: cfg.eval.benchmarks[k] for k in keys}
        if judge:
            cfg.eval.benchmarks.xstest.judges.refusal = OmegaConf.structured(JudgeConfig(**judge))
            if "alpaca_eval2" in keys:
                cfg.eval.benchmarks.alpaca_eval2.judges.annotator = OmegaConf.structured(JudgeConfig(**judge))
    return cfg


def test_openai_judge_reads_its_key_from_the_environment_and_never_writes_it(tiny_base, judge_server, tmp_path, monkeypatch):
    from harness.eval.suite import run_suite

    monkeypatch.setenv("HARNESS_TEST_JUDGE_KEY", SECRET)
    judge = {"kind": "openai", "model": "judge-1", "base_url": judge_server, "api_key_env": "HARNESS_TEST_JUDGE_KEY",
             "max_retries": 0}
    cfg = suite_with(["xstest", "alpaca_eval2"], judge)
    out = run_suite(cfg.eval, tiny_base, {"path": tiny_base.path}, cfg.model, str(tmp_path))
    for key in ("xstest", "alpaca_eval2"):
        assert "error" not in out[key], out[key].get("error")
        assert 0.0 <= out[key]["score"] <= 100.0
    # the judge answered in its classes (that its verdicts, not string matching, decide the labels:
    # test_eval_known_answers.py::test_xstest_labels_are_the_judges_not_string_matchings)
    samples = [json.loads(line) for line in (Path(out["xstest"]["dir"]) / "samples.jsonl").read_text().splitlines()]
    assert {s["label"] for s in samples} <= {"following", "refusal"}
    annotations = [json.loads(line) for line in (Path(out["alpaca_eval2"]["dir"]) / "samples.jsonl").read_text().splitlines()]
    assert all(a["preference"] is not None for a in annotations)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_unreachable_judge_fails_its_benchmark_and_the_others_finish(tiny_base, tmp_path, monkeypatch):
    from harness.eval.suite import run_suite

    monkeypatch.setenv("HARNESS_TEST_JUDGE_KEY", SECRET)
    with socket.socket() as s:  # bound and held, never listening: connections are refused, and no one else gets it
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        judge = {"kind": "openai", "model": "judge-1", "base_url": f"http://127.0.0.1:{closed}/v1",
                 "api_key_env": "HARNESS_TEST_JUDGE_KEY", "max_retries": 0, "timeout_s": 5}
        cfg = suite_with(["gsm8k", "xstest"], judge)
        out = run_suite(cfg.eval, tiny_base, {"path": tiny_base.path}, cfg.model, str(tmp_path))
    assert "error" not in out["gsm8k"] and 0.0 <= out["gsm8k"]["score"] <= 100.0
    assert "judge 'judge-1'" in out["xstest"]["error"] and f"127.0.0.1:{closed}" in out["xstest"]["error"]
    assert SECRET not in out["xstest"]["error"] + out["xstest"]["traceback"]


def test_missing_key_variable_is_named(tiny_base, tmp_path, monkeypatch):
    from harness.eval.suite import run_suite

    monkeypatch.delenv("HARNESS_TEST_JUDGE_KEY", raising=False)
    judge = {"kind": "openai", "model": "judge-1", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "HARNESS_TEST_JUDGE_KEY"}
    cfg = suite_with(["xstest"], judge)
    out = run_suite(cfg.eval, tiny_base, {"path": tiny_base.path}, cfg.model, str(tmp_path))
    assert "HARNESS_TEST_JUDGE_KEY" in out["xstest"]["error"] and "not set" in out["xstest"]["error"]
