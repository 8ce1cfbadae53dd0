"""Rollout throughput: vLLM against transformers' generate on the same prompts, model and sampler
(harness.train.rollout.throughput), as PPO samples them (`algorithm.rollout_backend`).

    python benchmarks/rollout_throughput.py                                   # tiny model, bundled prompts
    python benchmarks/rollout_throughput.py model=tulu2_13b prompts=uf --prompts 64 --hf-batch-size 16

Prints response tokens per second of each engine and their ratio (vllm / hf), measured one after the other in this
process after a warm-up call each. Needs vLLM (`pip install -e ".[vllm]"`); the ratio means something only on a CUDA
GPU with the real vLLM: on CPU (a fake engine in the tests) it measures nothing and says so. PPO's recipe (conf/algorithm/ppo.yaml)
gives the sampler: temperature 0.7, top-k 50, at most `algorithm.max_new_tokens` tokens (override it like any field).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness, not an installed one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="config overrides (model=..., prompts=..., algorithm.<field>=...)")
    parser.add_argument("--prompts", type=int, default=32, help="prompts sampled by each engine (one response each)")
    parser.add_argument("--hf-batch-size", type=int, default=16, help="prompts per transformers generate call")
    parser.add_argument("--stages", default=None, help="stage directory (the tiny model is built there)")
    args = parser.parse_args()

    from hydra import compose, initialize_config_dir

    import harness.config.schema  # noqa: F401  (registers the schemas)
    from harness import data
    from harness.config.errors import ConfigError
    from harness.models import base_model, device, load_tokenizer
    from harness.train import rollout
    from harness.train.ppo import keep_short_prompts, prompt_budget

    stages = args.stages or tempfile.mkdtemp(prefix="rollout-throughput-")
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["algorithm=ppo", f"paths.stages={stages}", *args.overrides])
    try:
        rollout.require_vllm("benchmarks/rollout_throughput.py", instead="")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    base, _ = base_model(cfg.model, cfg.paths.stages)
    tok = load_tokenizer(base, cfg.model.chat_template)
    _, query_ids = keep_short_prompts(data.load_prompts(cfg.prompts), tok, prompt_budget(cfg.algorithm, cfg.prompts.max_prompt_tokens))
    prompts = query_ids[: args.prompts]
    sampling = rollout.Sampling.of(cfg.algorithm, tok.eos_token_id)
    result = rollout.throughput(base, cfg.model.dtype, prompts, sampling, tok.pad_token_id, args.hf_batch_size,
                                cfg.algorithm.vllm_gpu_memory_utilization)
    print(f"rollout throughput: {result['prompts']} prompts, {cfg.model.name} ({cfg.model.dtype}) on {device()}, "
          f"up to {sampling.max_new_tokens} new tokens")
    print(f"{'engine':8}{'tokens':>10}{'tokens/s':>12}")
    for engine in ("hf", "vllm"):
        print(f"{engine:8}{result[f'{engine}_tokens']:>10}{result[f'{engine}_tokens_per_s']:>12.1f}")
    print(f"ratio (vllm / hf): {result['ratio']:.2f}")
    if device() != "cuda":
        print("note: no CUDA GPU here, so this is not the real vLLM: the ratio is only meaningful on a GPU with vLLM "
              "installed (pip install -e \".[vllm]\")")


if __name__ == "__main__":
    main()
