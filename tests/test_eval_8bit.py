"""eval.load_in_8bit: open-instruct's 8-bit policy (MMLU and TruthfulQA in the paper-era regime) as an option. It needs
CUDA and bitsandbytes, neither of which this machine has: it fails before any work with one `error:` line, reaches
transformers' bitsandbytes quantizer when asked to load, and keys its own benchmark stages and generations."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, compose


def test_without_cuda_or_bitsandbytes_it_is_one_error_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "algorithm=none", "eval=smoke", "tracking=none",
                          "eval.load_in_8bit=true", f"paths.home={tmp_path}", f"hydra.run.dir={tmp_path}/hydra"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: eval.load_in_8bit=true needs "), out.stderr[-2000:]
    assert not (tmp_path / "results" / "stages").exists() or not any((tmp_path / "results" / "stages").iterdir())


def test_it_combines_with_neither_vllm_nor_a_placement():
    from harness.config.checks import check
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match="eval.load_in_8bit=true loads the policy through transformers"):
        check(compose("eval.load_in_8bit=true", "eval.backend=vllm"))
    with pytest.raises(ConfigError, match="unset eval.placement.device_map"):
        check(compose("eval.load_in_8bit=true", "eval.placement.device_map=auto"))


def test_loading_asks_transformers_for_bitsandbytes_8bit(tiny_base):
    """The policy is loaded through transformers' bitsandbytes quantizer (which, here, finds no bitsandbytes)."""
    from harness.models import load_causal_lm_8bit

    with pytest.raises(ImportError, match="bitsandbytes` 8-bit quantization requires bitsandbytes"):
        load_causal_lm_8bit(tiny_base)


def test_8bit_benchmarks_are_stages_of_their_own(tmp_path):
    """Precision changes numbers: every benchmark stage and the generation cache differ, the trained policy does not."""
    from harness.eval.generation_cache import cache_dir
    from harness.planning import planned_stages, policy_identity
    from harness.models import ModelRef

    overrides = ["algorithm=dpo", "eval=tiny", f"paths.home={tmp_path}"]
    plain, quantised = compose(*overrides), compose(*overrides, "eval.load_in_8bit=true")
    keys = lambda cfg: {(s.kind, s.key) for s in planned_stages(cfg)}  # noqa: E731
    shared = keys(plain) & keys(quantised)
    assert {kind for kind, _ in shared} == {"model", "policy"}
    assert len(keys(quantised) - shared) == len(plain.eval.benchmarks)
    policy = ModelRef("/some/policy")
    assert cache_dir(tmp_path, policy_identity(policy, plain)) != cache_dir(tmp_path, policy_identity(policy, quantised))
