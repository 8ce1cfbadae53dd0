"""One rank of the vLLM weight-sync test (tests/test_rollout.py), launched through torchrun with 2 CPU processes
(gloo) and the fake vLLM (tests/fake_vllm) on PYTHONPATH: the same 2-iteration PPO run sharded with FSDP2, sampled by
transformers (`hf`) and by a fake vLLM engine in each process (`vllm`). Each rank writes what it saw to
<out>/rank<r>.json.

    torchrun --nproc_per_node 2 tests/rollout_worker.py <base dir> <reward-model dir> <out dir>
"""

import json
import sys
from pathlib import Path

import torch
import vllm
from conftest import compose
from torch.distributed.tensor import DTensor

from harness import data
from harness.models import ModelRef
from harness.train import ppo
from harness.train.reward import RewardModel

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])


def run(backend: str):
    cfg = compose("algorithm=ppo", "reward_model=tiny", "algorithm.max_steps=2", f"algorithm.rollout_backend={backend}")
    trainer = ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out / backend,
                             lambda m, s: None, cfg.seed, sharding="fsdp")
    trainer.train()
    return trainer


hf, sharded = run("hf"), run("vllm")
(engine,) = vllm.LLM.engines
syncs = []
for event in engine.events:
    if event[:2] == ("wake_up", ["weights"]):
        syncs.append([])
    elif event[0] == "load":
        syncs[-1].append(list(event[1:]))
policy = sharded.accelerator.unwrap_model(sharded.model).policy
rank = sharded.accelerator.process_index
(out / f"rank{rank}.json").write_text(json.dumps({
    "hf": hf.history, "vllm": sharded.history, "loads": syncs,
    "policy": [[name, list(p.shape), isinstance(p, DTensor)] for name, p in policy.named_parameters()]}))
torch.distributed.destroy_process_group()
