"""Nothing wrong is kept (reliability-2.md, "Wrong results kept"): generations are cached under the content of the
policy that made them, a policy whose files changed never answers, outputs and judge verdicts are checked before they
are kept, a marker vouches only with its digests, and a torn cache line costs one warning, not every later run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from omegaconf import open_dict

from conftest import compose
from fake_openai import openai_endpoint


def gsm8k_suite(limit: int):
    return compose("eval=smoke", f"eval.benchmarks.gsm8k.limit={limit}", "eval.benchmarks.gsm8k.generation.max_new_tokens=8")


@pytest.fixture
def policy_stage(tiny_base, tmp_path):
    """A complete policy stage holding (a copy of) the tiny SFT model, and its ModelRef."""
    from harness.models import ModelRef
    from harness.records.stages import Stage

    stage = Stage("policy", {"test": "a policy"}, tmp_path / "stages")
    build = lambda d: (shutil.copytree(tiny_base.path, d / "model", dirs_exist_ok=True), {})[1]  # noqa: E731
    stage.run(build)
    return stage, build, ModelRef(str(stage.dir / "model"), key=stage.key)


def nan_fill(weights: Path) -> None:
    """Every float NaN, the file's size kept (what the probe did past the safetensors header)."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    save_file({k: torch.full_like(v, float("nan")) for k, v in tensors.items()}, str(weights), metadata={"format": "pt"})


def test_a_policy_corrupted_after_complete_never_answers_and_its_rebuild_meets_only_its_own_answers(policy_stage):
    """Probe 1: NaN-filled policy weights (size kept), then `eval.benchmarks.gsm8k.limit=3`: 2 answers came from the
    cache and the third, empty, from the NaN model, scored COMPLETE; after the policy was rebuilt the NaN answer stayed.
    Now the policy is checked byte for byte before it answers: the benchmark fails naming the stage, which is deleted;
    the rebuilt policy (same content) finds only answers its own content gave."""
    from harness.eval import generation_cache
    from harness.eval.suite import run_suite
    from harness.models import stage_content

    stage, build, policy = policy_stage
    root = stage.root
    first = run_suite(gsm8k_suite(2).eval, policy, {"stage": stage.key}, compose().model, str(root))["gsm8k"]
    assert "error" not in first, first.get("error")
    cache = generation_cache.cache_dir(root, {"stage": stage.key}, content=stage_content(policy)) / generation_cache.ANSWERS
    cached = cache.read_text()

    weights = stage.dir / "model" / "model.safetensors"
    written = weights.stat()
    nan_fill(weights)  # changed in place with its modification time kept (a disk or copy error)
    os.utime(weights, ns=(written.st_atime_ns, written.st_mtime_ns))
    assert stage.usable()  # the default check (sizes; hashes of files written since) cannot see it
    corrupt = run_suite(gsm8k_suite(3).eval, policy, {"stage": stage.key}, compose().model, str(root))["gsm8k"]
    assert "CorruptStage" in corrupt["error"] and str(stage.dir) in corrupt["error"] and "sha256" in corrupt["error"]
    assert not stage.dir.exists()  # deleted: the next run rebuilds it
    assert cache.read_text() == cached  # the NaN model added nothing

    stage.run(build)  # rebuilt: the same content, so the same cache, which holds only answers of that content
    assert generation_cache.cache_dir(root, {"stage": stage.key}, content=stage_content(policy)) == cache.parent


def test_a_rebuilt_policy_with_other_weights_meets_neither_old_answers_nor_old_scores(policy_stage):
    """A policy rebuilt under the same stage key with other weights (training is not bit-exact on every machine) gets
    its own generation cache, and benchmark stages computed from the old weights are not reused."""
    import torch
    from safetensors.torch import load_file, save_file

    from harness.eval import generation_cache
    from harness.eval.suite import run_suite
    from harness.models import stage_content

    stage, build, policy = policy_stage
    suite, model_cfg = gsm8k_suite(2).eval, compose().model
    first = run_suite(suite, policy, {"stage": stage.key}, model_cfg, str(stage.root))["gsm8k"]
    old = stage_content(policy)

    def other_build(d):
        build(d)
        weights = d / "model" / "model.safetensors"
        tensors = load_file(str(weights))
        save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in tensors.items()}, str(weights),
                  metadata={"format": "pt"})
        return {}

    shutil.rmtree(stage.dir)
    stage.run(other_build)
    assert stage_content(policy) != old
    assert generation_cache.cache_dir(stage.root, {"stage": stage.key}, content=stage_content(policy)) != \
        generation_cache.cache_dir(stage.root, {"stage": stage.key}, content=old)
    second = run_suite(suite, policy, {"stage": stage.key}, model_cfg, str(stage.root))["gsm8k"]
    assert second["reused"] is False and second["policy_content"] == stage_content(policy)
    assert first["policy_content"] == old


def test_partly_empty_or_non_finite_outputs_beyond_the_stated_fraction_fail():
    """Probe 1: 1 of 3 answers empty was scored COMPLETE (only all-empty failed). Empty answers beyond the benchmark's
    max_empty_fraction (0.1; tiny_grid's stand-ins 1.0) fail it, and so does any non-finite log-likelihood."""
    from harness.eval.generation import OutputCheck

    check = OutputCheck()
    check.tally("generate_until", ["42", "", "7"])
    assert "1 of 3 generations are empty" in check.problem(compose().eval.benchmarks.gsm8k.max_empty_fraction)
    assert check.problem(compose("eval=tiny_grid").eval.benchmarks.gsm8k.max_empty_fraction) is None
    healthy = OutputCheck()
    healthy.tally("generate_until", ["a"] * 19 + [""])
    assert healthy.problem(0.1) is None  # 5%: within the stated fraction
    for value in (float("inf"), float("-inf"), float("nan")):
        scores = OutputCheck()
        scores.tally("loglikelihood", [(-1.0, True), (value, False)])
        assert "1 of 2 log-likelihoods are NaN or infinite" in scores.problem(1.0)


@pytest.mark.parametrize("reply, shown", [
    ({"message": {"role": "assistant", "content": "As an AI I cannot say."}}, "As an AI I cannot say."),
    (b"<html><body>502 Bad Gateway</body></html>", "<html>"),
    (b'{"error": "model overloaded"}', "model overloaded"),
])
def test_a_judge_reply_outside_the_allowed_labels_is_an_error_naming_the_judge_and_the_reply(tmp_path, reply, shown):
    """Probes 2 and 13: a judge answering none of the options scored 0.0 (TruthfulQA), was marked COMPLETE and reused
    by later sweeps; HTML or JSON without `choices` raised a raw UnicodeDecodeError / KeyError. Each is now an error
    naming the judge and its reply, and nothing of it is cached."""
    from omegaconf import OmegaConf

    from harness.config.schema import JudgeConfig
    from harness.eval.judges import JudgeUnavailable, OpenAIJudge, Verdicts

    with openai_endpoint(lambda body: reply) as base_url:
        cfg = OmegaConf.structured(JudgeConfig(kind="openai", model="judge-7", base_url=base_url, api_key_env=None,
                                               max_retries=0))
        verdicts = Verdicts({"j": 1}, lambda: OpenAIJudge(cfg), tmp_path / "verdicts.jsonl")
        with pytest.raises(JudgeUnavailable) as err:
            verdicts.choose(["Q: Is the sky blue?\nA: yes\nTrue:"], [" yes", " no"])
    assert "judge-7" in str(err.value) and base_url in str(err.value) and shown in str(err.value)
    assert not (tmp_path / "verdicts.jsonl").exists() or not (tmp_path / "verdicts.jsonl").read_text()


def test_a_complete_marker_without_its_digests_is_not_trusted(tmp_path, capsys):
    """Probe 3: COMPLETE replaced by `{}` was trusted as a legacy stage (gsm8k `-`, Average None, exit 0). A marker that
    lists no outputs vouches for nothing: the stage is rebuilt, and the console names it."""
    from harness.records.stages import MARKER, Stage

    calls = []
    stage = Stage("eval", {"x": 1}, tmp_path)
    work = lambda d: (calls.append(1), (d / "samples.jsonl").write_text("{}\n"), {"score": 50.0})[2]  # noqa: E731
    stage.run(work)
    (stage.dir / MARKER).write_text("{}")
    result, reused = stage.run(work)
    assert not reused and result["score"] == 50.0 and len(calls) == 2
    out = capsys.readouterr().out
    assert str(stage.dir) in out and "lists no outputs" in out


def test_a_torn_tail_of_the_generation_cache_is_dropped_with_one_warning_naming_it(tmp_path, capsys):
    """Probe 4: a torn line at the end of generations/<id>/answers.jsonl failed every later run with
    `JSONDecodeError: Unterminated string` (no file named), forever."""
    from harness.eval.generation_cache import ANSWERS, CachedLM

    asked = []

    class Policy:
        class lm:  # noqa: N801  (the LazyPolicy's `.lm`)
            @staticmethod
            def generate_until(requests):
                asked.extend(requests)
                return [f"answer {r.args[0]}" for r in requests]

    from lm_eval.api.instance import Instance

    request = lambda p: Instance("generate_until", doc={}, arguments=(p, {"until": []}), idx=0)  # noqa: E731
    CachedLM(Policy, tmp_path).generate_until([request("a"), request("b")])
    with (tmp_path / ANSWERS).open("a") as f:
        f.write('{"kind": "generate_until", "key": "0bf')  # a process killed in the middle of an append
    capsys.readouterr()
    again = CachedLM(Policy, tmp_path)
    assert again.generate_until([request("a"), request("c")]) == ["answer a", "answer c"]
    out = capsys.readouterr().out
    assert out.count("WARNING") == 1 and str(tmp_path / ANSWERS) in out and "torn" in out
    assert [r.args[0] for r in asked] == ["a", "b", "c"]  # the cached answers kept, the torn one asked again
    assert all(json.loads(line) for line in (tmp_path / ANSWERS).read_text().splitlines())
