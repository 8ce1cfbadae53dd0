"""One rank of the FSDP2 PPO test (tests/test_fsdp.py), launched through torchrun with 2 CPU processes (gloo):
the same 2-iteration PPO run unsharded (DDP) and sharded (FSDP2), then the sharded run resumed from its first
checkpoint. Each rank writes what it saw to <out>/rank<r>.json.

    torchrun --nproc_per_node 2 tests/fsdp_worker.py <base dir> <reward-model dir> <out dir>
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from conftest import compose
from torch.distributed.tensor import DTensor

from harness import data
from harness.models import ModelRef
from harness.train import ppo
from harness.train.reward import RewardModel

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])
cfg = compose("algorithm=ppo", "reward_model=tiny", "algorithm.max_steps=2", "algorithm.save_steps=1")
prompts = data.load_prompts(cfg.prompts)


def run(name: str, sharding: str):
    trainer = ppo.PPOTrainer(cfg.algorithm, base, cfg.model, prompts, rm, out / name, lambda m, s: None, cfg.seed,
                             sharding=sharding)
    return trainer, trainer.train()


def shards(module) -> list:
    """(local elements, global elements) of each parameter; only DTensors have a local shard."""
    return [[p.to_local().numel(), p.numel()] if isinstance(p, DTensor) else [p.numel(), None] for p in module.parameters()]


ddp, ddp_result = run("ddp", "none")
sharded, sharded_result = run("fsdp", "fsdp")
rank = sharded.accelerator.process_index
if rank == 0:  # the resumed run starts from the sharded run's first checkpoint
    (out / "resumed" / "checkpoints").mkdir(parents=True)
    shutil.copytree(out / "fsdp" / "checkpoints" / "checkpoint-1", out / "resumed" / "checkpoints" / "checkpoint-1")
sharded.accelerator.wait_for_everyone()
_, resumed_result = run("resumed", "fsdp")
(out / f"rank{rank}.json").write_text(json.dumps({
    "rank": rank, "ddp": ddp.history, "fsdp": sharded.history, "resumed": resumed_result["resumed_from"],
    "resumed_history": json.loads((out / "resumed" / "log_history.json").read_text()) if rank == 0 else None,
    "policy": shards(sharded.model.policy), "value": shards(sharded.model.value), "ref": shards(sharded.ref),
    "reward_model": shards(sharded.scorer.model)}))
torch.distributed.destroy_process_group()
