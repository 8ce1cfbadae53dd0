"""One rank of tests/test_train_placement.py (torchrun): builds the DPO and GRPO trainers and reports where each of
their models sits, next to the device this rank's trainer config assigned.

    torchrun --nproc_per_node 2 tests/placement_worker.py <base dir> <reward-model dir> <out dir>
"""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from conftest import compose

from harness import data
from harness.models import ModelRef
from harness.train import dpo, grpo
from harness.train.reward import RewardModel

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])
def name(device) -> str:
    device = torch.device(device)
    return f"{device.type}:{device.index or 0}"


def where(model) -> str:
    return name(next(model.parameters()).device)



cfg = compose("algorithm=dpo")
trainer, _ = dpo.build(cfg.algorithm, base, cfg.model, data.load_preferences(cfg.dataset), None, out / "dpo", "none", "t", 0)
report = {"rank_device": name(PartialState().device), "dpo_policy": where(trainer.model), "dpo_reference": where(trainer.ref_model)}
cfg = compose("algorithm=grpo", "reward_model=tiny")
trainer, _, _ = grpo.build(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out / "grpo", "none", "t",
                           0, 1024)
report |= {"grpo_policy": where(trainer.model), "grpo_reward_model": where(trainer.reward_funcs[0].scorer.model)}
(out / f"rank{PartialState().process_index}.json").write_text(json.dumps(report))
torch.distributed.destroy_process_group()
