"""Integrity of what is cached and reported: a model that outputs nothing or NaN fails its benchmarks instead of
scoring 0, a torn JSON-lines tail is dropped on resume, a judge failure keeps the generations already made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import open_dict

from conftest import compose
from test_eval_suite import SECRET, judge_server  # noqa: F401  (a fixture)


def _suite(keys: list[str], **overrides):
    cfg = compose("eval=tiny", *[f"eval.benchmarks.{k}={v}" for k, v in overrides.items()])
    with open_dict(cfg.eval):
        cfg.eval.benchmarks = {k: cfg.eval.benchmarks[k] for k in keys}
    return cfg


@pytest.fixture(scope="module")
def nan_model(tiny_base, tmp_path_factory):
    """The tiny SFT model with every weight NaN (size and format kept, as a corrupted checkpoint would be)."""
    import torch
    from safetensors.torch import load_file, save_file

    from harness.models import ModelRef

    out = tmp_path_factory.mktemp("nan") / "model"
    shutil.copytree(tiny_base.path, out)
    weights = out / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()},
              str(weights), metadata={"format": "pt"})
    return ModelRef(str(out))


def test_a_model_producing_nan_fails_its_benchmarks_and_caches_nothing(nan_model, tmp_path):
    from harness.eval.suite import benchmark_stage, run_suite

    cfg = _suite(["gsm8k", "mmlu"])
    out = run_suite(cfg.eval, nan_model, {"path": nan_model.path}, cfg.model, str(tmp_path))
    assert "empty" in out["gsm8k"]["error"] and "gsm8k" in out["gsm8k"]["error"]
    assert "NaN" in out["mmlu"]["error"]
    for key, bench in cfg.eval.benchmarks.items():
        assert not benchmark_stage(bench, {"path": nan_model.path}, tmp_path).complete, key


# ------------------------------------------------------------------------------------------------- torn lines
def test_a_torn_last_line_is_dropped_and_truncated_on_resume(tmp_path):
    from harness.records.jsonl import read_jsonl

    path = tmp_path / "verdicts.jsonl"
    path.write_text('{"key": "a", "verdict": 1}\n{"key": "b", "verdict": 0}\n{"key": "0bf')
    assert read_jsonl(path, repair=True) == [{"key": "a", "verdict": 1}, {"key": "b", "verdict": 0}]
    assert path.read_text() == '{"key": "a", "verdict": 1}\n{"key": "b", "verdict": 0}\n'


def test_a_bad_line_in_the_middle_is_an_error_naming_the_file_and_line(tmp_path):
    from harness.records.jsonl import read_jsonl

    path = tmp_path / "verdicts.jsonl"
    path.write_text('{"key": "a"}\n{"key": \n{"key": "c"}\n')
    with pytest.raises(ValueError, match=r"verdicts.jsonl, line 2"):
        read_jsonl(path, repair=True)
    assert path.read_text().count("\n") == 3  # nothing truncated


def test_a_judge_resumes_after_a_torn_verdict_line(tmp_path):
    from harness.eval.judges import Verdicts

    path = tmp_path / "verdicts.jsonl"
    calls = []

    def judge():
        class Judge:
            def classify(self, texts):
                calls.append(list(texts))
                return [len(t) % 2 for t in texts]
        return Judge()

    Verdicts({"j": 1}, judge, path).classify(["a", "bb"])
    with path.open("a") as f:
        f.write('{"key": "0bf')  # killed in the middle of an append
    again = Verdicts({"j": 1}, judge, path)
    assert again.classify(["a", "bb", "ccc"]) == [1, 0, 1]
    assert calls == [["a", "bb"], ["ccc"]]  # the cached verdicts were kept, only the new one asked
    assert all(json.loads(line) for line in path.read_text().splitlines())


# ------------------------------------------------------------------------------------------------- judge failure
def test_a_judge_failure_keeps_the_generations_and_a_rerun_only_calls_the_judge(tiny_base, judge_server, tmp_path,
                                                                               monkeypatch):
    from omegaconf import OmegaConf

    from harness.config.schema import JudgeConfig
    from harness.eval.generation import REQUESTS_FILE
    from harness.eval.suite import run_suite

    cfg = _suite(["xstest"])
    with open_dict(cfg.eval):
        cfg.eval.benchmarks.xstest.judges.refusal = OmegaConf.structured(JudgeConfig(
            kind="openai", model="judge-1", base_url=judge_server, api_key_env="HARNESS_TEST_JUDGE_KEY", max_retries=0))
    monkeypatch.delenv("HARNESS_TEST_JUDGE_KEY", raising=False)
    first = run_suite(cfg.eval, tiny_base, {"path": tiny_base.path}, cfg.model, str(tmp_path))["xstest"]
    assert "HARNESS_TEST_JUDGE_KEY" in first["error"]
    requests = Path(first["dir"]) / REQUESTS_FILE
    recorded = requests.read_text()
    assert '"generate_until"' in recorded

    def no_policy():
        raise AssertionError("the policy was loaded again although every generation was recorded")

    monkeypatch.setenv("HARNESS_TEST_JUDGE_KEY", SECRET)
    again = run_suite(cfg.eval, tiny_base, {"path": tiny_base.path}, cfg.model, str(tmp_path), lm_factory=no_policy)["xstest"]
    assert "error" not in again, again.get("error")
    assert requests.read_text() == recorded  # replayed, not rewritten


def test_a_missing_judge_key_is_found_before_any_stage(tmp_path, monkeypatch):
    from harness.config.errors import ConfigError
    from harness.pipeline import run

    monkeypatch.delenv("HARNESS_TEST_JUDGE_KEY", raising=False)
    cfg = compose(f"paths.home={tmp_path}", "tracking=none", "eval=tiny", "eval.benchmarks.xstest.judges.refusal.kind=openai",
                  "eval.benchmarks.xstest.judges.refusal.model=gpt-4",
                  "eval.benchmarks.xstest.judges.refusal.api_key_env=HARNESS_TEST_JUDGE_KEY")
    with pytest.raises(ConfigError, match="HARNESS_TEST_JUDGE_KEY.*not set"):
        run(cfg)
    assert not list((tmp_path / "results" / "stages").glob("*/*"))  # no model built, nothing trained or generated


def test_a_refused_key_names_its_variable_and_the_real_attempt_count(judge_server, monkeypatch):
    from harness.config.schema import JudgeConfig
    from harness.eval.judges import JudgeUnavailable, OpenAIJudge
    from omegaconf import OmegaConf

    monkeypatch.setenv("HARNESS_TEST_JUDGE_KEY", "sk-wrong")
    judge = OpenAIJudge(OmegaConf.structured(JudgeConfig(kind="openai", model="judge-1", base_url=judge_server,
                                                         api_key_env="HARNESS_TEST_JUDGE_KEY", max_retries=2)))
    with pytest.raises(JudgeUnavailable, match=r"after 1 attempt\(s\): HTTP 401.*HARNESS_TEST_JUDGE_KEY"):
        judge.choose(["is this safe?"], ["yes", "no"])


# ------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("addition, key", [("+algorithm.bta=0.2", "algorithm.bta"), ("+algoritm.beta=0.2", "algoritm"),
                                           ("+eval.benchmarks.gsm8k.limt=2", "eval.benchmarks.gsm8k.limt"),
                                           ("+model.tiny.hiden_size=8", "model.tiny.hiden_size")])
def test_an_added_key_the_schema_does_not_know_is_rejected(addition, key):
    from harness.checks import check
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"{key.replace('.', '[.]')}.*not a key of"):
        check(compose(addition))


def test_added_entries_of_free_form_maps_are_accepted():
    from harness.checks import check

    check(compose("+eval.benchmarks.gsm8k.options.some_runner_setting=1"))


def test_the_bundled_configs_have_only_schema_keys():
    from harness.checks import unknown_keys

    for overrides in (["+sweep=all"], ["eval=paper", "algorithm=ppo", "reward_model=tiny", "model=tulu2_13b"]):
        assert unknown_keys(compose(*overrides)) == [], overrides


# ------------------------------------------------------------------------------------------------- data
@pytest.mark.parametrize("override", ["dataset.max_samples=0", "dataset.max_samples=-3"])
def test_a_selection_with_no_rows_fails_before_anything_is_cached(tmp_path, override):
    from harness import data
    from harness.data.validate import DataError

    cfg = compose(f"paths.home={tmp_path}", override)
    with pytest.raises(DataError, match=r"max_samples.*no rows"):
        data.load_preferences(cfg.dataset, cache=cfg.paths.stages)
    assert not list(Path(cfg.paths.stages).glob("data/*/COMPLETE"))


@pytest.mark.parametrize("overrides, message", [
    (["algorithm=ppo", "reward_model=tiny", "algorithm.effective_batch_size=-4"], r"algorithm\.effective_batch_size=-4 must be >= 1"),
    (["algorithm.learning_rate=-0.005"], r"algorithm\.learning_rate=-0\.005 must be > 0"),
    (["algorithm.epochs=0"], r"algorithm\.epochs=0"),
    (["algorithm=ppo", "reward_model=tiny", "reward_model.effective_batch_size=0"], r"reward_model\.effective_batch_size=0"),
    (["algorithm=grpo", "reward_model=tiny", "algorithm.effective_batch_size=30", "algorithm.per_device_batch_size=30"],
     r"algorithm\.effective_batch_size=30 .*divisible by algorithm\.num_generations=\d"),
    (["launch.processes=3", "algorithm.effective_batch_size=16"], r"algorithm\.effective_batch_size=16 .*3 training processes"),
])
def test_numeric_recipe_values_are_checked_before_any_stage_in_the_configs_names(overrides, message):
    from harness.checks import check
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        check(compose(*overrides))


@pytest.mark.parametrize("content, cause", [
    (b"", r"is empty"),
    (b'{"chosen": "a", "rejected": "b"}\n{"chosen": "caf\xe9", "rejected": "b"}\n', r"line 2: not UTF-8"),
    (b'{"chosen": "a", "rejected": "b"}\n{"chosen": "a", "rejec\n', r"line 2: not a JSON object"),
])
def test_a_bad_data_file_is_named_with_its_line_and_cause(tmp_path, content, cause):
    from harness import data
    from harness.data.validate import DataError

    path = tmp_path / "mine.jsonl"
    path.write_bytes(content)
    cfg = compose(f"dataset.files.train={path}", "dataset.eval_split=null")
    with pytest.raises(DataError, match=rf"{path}.*{cause}"):
        data.load_preferences(cfg.dataset)


def test_a_relative_data_path_is_read_from_the_working_directory(tmp_path, monkeypatch):
    from harness import data

    bundled = Path(data.preferences.ASSETS) / "tiny" / "preferences_train.jsonl"
    (tmp_path / "mine.jsonl").write_text("".join(bundled.read_text().splitlines(keepends=True)[:20]))
    monkeypatch.chdir(tmp_path)
    cfg = compose("dataset.files.train=mine.jsonl", "dataset.eval_split=null")
    assert len(data.load_preferences(cfg.dataset)) == 20
    # bundled relative paths still resolve under harness/assets/
    assert len(data.load_preferences(compose("dataset.eval_split=null").dataset)) > 20


def test_a_hub_read_without_network_ends_at_once_with_the_prefetch_hint(tmp_path):
    import socket
    import subprocess
    import sys
    import time

    from conftest import ROOT

    with socket.socket() as s:  # a hub endpoint nothing answers at
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    program = ("from harness.data.mirror import load_hub\n"
               "load_hub('allenai/tulu-2.5-preference-data', None, 'hh_rlhf', None, None, 'python -m harness.data prefetch dataset=hh_rlhf')")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "MirrorMissing" in out.stderr and "python -m harness.data prefetch dataset=hh_rlhf paths.mirror=" in out.stderr, out.stderr[-2000:]
    assert time.monotonic() - start < 20  # no minute of retries


def test_a_results_directory_that_cannot_be_written_is_found_at_start(tmp_path):
    from harness.config.errors import ConfigError
    from harness.pipeline import run

    # as root, permissions do not stop writes: /sys is a read-only file system in containers and refuses mkdir outside
    cfg = compose(f"paths.home={tmp_path}", "paths.results=/sys/harness-results", "tracking=none")
    with pytest.raises(ConfigError, match=r"paths.results=/sys/harness-results.*not writable"):
        run(cfg)


def test_an_oversized_row_is_dropped_without_tokenising_it(tiny_base, tmp_path):
    from harness import data
    from harness.data.preferences import drop_overlength
    from harness.models import load_tokenizer

    bundled = Path(data.preferences.ASSETS) / "tiny" / "preferences_train.jsonl"
    rows = [json.loads(line) for line in bundled.read_text().splitlines()[:30]]
    huge = dict(rows[0], chosen=[rows[0]["chosen"][0], {"role": "assistant", "content": "word " * 400_000}])
    path = tmp_path / "with_huge_row.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [huge] + rows[1:]))
    prepared = data.prepare_preferences(compose(f"dataset.files.train={path}", "dataset.eval_split=null").dataset)
    fitted = drop_overlength(prepared, load_tokenizer(tiny_base, "tulu"), 256, 0.5)
    assert fitted.report.dropped["over_length"] >= 1 and len(fitted.dataset) <= 29
    first = fitted.report.first_bad[0]
    assert "chars" in str(first) and "tokens" not in str(first)  # decided by its length in characters


def test_the_cost_model_counts_table_2s_reward_models():
    from harness.sweep.cost import CostModel, gpu_hours

    table2 = compose("algorithm=ppo", "algorithm.table2=true", "reward_model=none", "model=tulu2_13b")
    named = compose("algorithm=ppo", "algorithm.table2=true", "reward_model=none", "model=tulu2_13b",
                    f"reward_model.params_b={table2.model.params_b}")  # a 13B reward model, said explicitly
    hours = gpu_hours("reward_model", table2, {}, CostModel())
    assert hours > 0 and hours == pytest.approx(gpu_hours("reward_model", named, {}, CostModel()))


def test_report_cells_count_runs_that_share_every_stage_once():
    from harness.records.results import index_row
    from harness.report.build import distinct
    from harness.report.runs import from_index_row

    def result(seed: int, policy: str) -> dict:
        return {"run_id": f"tiny-none-s{seed}", "config_hash": f"h{seed}", "recorded_at": "2026-11-30T00:00:00+0000",
                "axes": {"model": "tiny", "algorithm": "none"}, "categories": {}, "average": 50.0,
                "stages": {"policy": {"path": policy}},
                "benchmarks": {"gsm8k": {"score": 50.0, "dir": f"/stages/eval/{policy}-gsm8k"}},
                "provenance": {"git_commit": "x", "seed": seed, "versions": {}, "chat_template": "tulu"},
                "result_path": f"/results/runs/{seed}/result.json"}

    # seeds 1, 2, 3 of the SFT model: greedy evaluation reads no seed, so one evaluation; a DPO policy differs
    runs = [from_index_row(index_row(result(s, "sft"))) for s in (1, 2, 3)] + [from_index_row(index_row(result(4, "dpo")))]
    assert len(distinct([(r, 50.0) for r in runs])) == 2
