"""GRPO through TRL 1.16's own vLLM path (colocate mode) with the fake vLLM (tests/fake_vllm) on PYTHONPATH before TRL
is imported (TRL binds vLLM's names at import): a short tiny GRPO run, then what the engine saw and what TRL logged,
written to <out>/grpo_vllm.json (tests/test_rollout.py).

    PYTHONPATH=.:tests:tests/fake_vllm python tests/grpo_vllm_worker.py <base dir> <reward-model dir> <out dir>
"""

import json
import sys
from pathlib import Path

import vllm
from conftest import compose

from harness import data
from harness.models import ModelRef
from harness.train import grpo
from harness.train.reward import RewardModel

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])
cfg = compose("algorithm=grpo", "reward_model=tiny", "algorithm.rollout_backend=vllm", "algorithm.max_steps=2",
              "algorithm.per_device_batch_size=8")
trainer, tok, _ = grpo.build(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out, "none", "test",
                             cfg.seed, cfg.prompts.max_prompt_tokens)
trainer.train()
(engine,) = vllm.LLM.engines
events = []
for event in engine.events:
    if event[0] == "generate":
        _, prompts, params, outputs = event
        events.append(["generate", len(prompts), [{k: v for k, v in vars(p).items() if k in (
            "n", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_tokens", "logprobs", "ignore_eos",
            "stop_token_ids")} for p in params[:1]], [len(o[0]) for o in outputs], [o[0][-1] for o in outputs]])
    else:
        events.append([event[0], *event[1:]])
(out / "grpo_vllm.json").write_text(json.dumps({
    "events": events, "eos": tok.eos_token_id, "alg": {k: cfg.algorithm[k] for k in (
        "temperature", "max_new_tokens", "max_length", "vllm_gpu_memory_utilization", "vllm_sleep")},
    "policy": [[n, list(p.shape)] for n, p in trainer.model.named_parameters()],
    "log": [h for h in trainer.state.log_history if "completions/mean_length" in h]}, default=str))
