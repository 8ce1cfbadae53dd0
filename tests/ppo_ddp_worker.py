"""One rank of a data-parallel PPO run (launched by tests/test_ppo_distributed.py through torchrun).

    torchrun --nproc_per_node 2 tests/ppo_ddp_worker.py <base dir> <reward-model dir> <out dir> [overrides ...]
"""

import json
import os
import sys
from pathlib import Path

import torch
from conftest import compose

from harness import data
from harness.models import ModelRef
from harness.train import ppo
from harness.train.reward import RewardModel

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])
cfg = compose("algorithm=ppo", "reward_model=tiny", *sys.argv[4:])
logged = []
trainer = ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out,
                         lambda metrics, step: logged.append(step), cfg.seed)
if os.environ.get("PPO_GRADIENT_CHECK"):  # one minibatch's gradient, its rows split between the processes
    check = Path(os.environ["PPO_GRADIENT_CHECK"])
    batch = ppo.Rollout(**torch.load(check / "rollout.pt"))
    rows = torch.arange(len(batch.query)).chunk(trainer.accelerator.num_processes)[trainer.accelerator.process_index]
    trainer.backward_minibatch(batch, rows)
    if trainer.accelerator.is_main_process:
        torch.save([p.grad.clone() for p in trainer.model.parameters()], check / "gradient_2_processes.pt")
    trainer.optimizer.zero_grad()
    part = batch.select(rows)  # this process's half of the minibatch, its advantages whitened over both halves
    trainer.advantages(part)
    torch.save(part.advantages, check / f"advantages_rank{trainer.accelerator.process_index}.pt")
seed = torch.initial_seed()  # this process's sampling seed
policy = trainer.accelerator.unwrap_model(trainer.model).policy


def checksum() -> float:
    return sum(float(p.double().sum()) for p in policy.parameters())


initial = checksum()  # this replica before any step
result = trainer.train()
rank = trainer.accelerator.process_index
(out / f"rank{rank}.json").write_text(json.dumps({**result, "rank": rank, "logged": logged, "checksum": checksum(),
                                                  "seed": seed,
                                                  "initial_checksum": initial,
                                                  "prompts_seen": len(trainer.batch_indices(0))}))
torch.distributed.destroy_process_group()
