"""One rank of the sharded-accumulation test (tests/test_fsdp_scale.py), launched through torchrun with 2 CPU
processes (gloo). Each rank writes what it measured to <out>/rank<r>.json:

- PPO, 2 iterations, gradients clipped at <max_grad_norm> (the test sets it so that clipping binds): sharded (`fsdp`)
  with one micro-batch per process, then `fsdp` and `fsdp_offload` (pinning off) with four, and the offload run
  resumed from its first checkpoint. After every micro-batch's backward each run counts the gradient elements this
  rank holds, FSDP2's unsharded accumulation buffers included; at every optimiser step it records each group's
  gradient norm measured here, as clip_gradients reports it, and after clipping.
- GRPO: TRL's generation of one round on a policy sharded by accelerate's own FSDP2 preparation (as under
  conf/accelerate/fsdp.yaml), counting FSDP's all-gathers per round: TRL's method against the project's
  (harness.train.grpo.GatherOnceGRPOTrainer).

    torchrun --nproc_per_node 2 tests/fsdp_scale_worker.py <base dir> <reward-model dir> <out dir> <max_grad_norm>
"""

import json
import shutil
import sys
import types
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from accelerate import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from conftest import CONF, compose
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from trl import GRPOTrainer

from harness import data
from harness.models import ModelRef
from harness.train import grpo, ppo
from harness.train.reward import RewardModel

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])
PPO = ("algorithm=ppo", "reward_model=tiny", "algorithm.max_steps=2", "algorithm.save_steps=1",
       f"algorithm.max_grad_norm={sys.argv[4]}")
prompts = data.load_prompts(compose(*PPO).prompts)


def local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def gradient_elements(model: torch.nn.Module) -> int:
    """Gradient elements this rank holds: the parameters' (sharded) gradients, and the unsharded gradients FSDP2 keeps
    between backwards that did not reduce-scatter (torch 2.13 _fsdp_param.py: FSDPParam.unsharded_accumulated_grad,
    and the unsharded parameter's own .grad)."""
    held = sum(local(p.grad).numel() for p in model.parameters() if p.grad is not None)
    states = {id(s): s for m in model.modules() if isinstance(m, FSDPModule) for s in [m._get_fsdp_state()]}
    for state in states.values():
        for param in (p for group in state._fsdp_param_groups for p in group.fsdp_params):
            unsharded = [param.unsharded_accumulated_grad]  # an AttributeError here: torch renamed it, fix the census
            if hasattr(param, "_unsharded_param"):
                unsharded.append(param._unsharded_param.grad)
            held += sum(g.numel() for g in unsharded if g is not None)
    return held


def norm(params) -> float:
    total = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    return float(total.full_tensor() if isinstance(total, DTensor) else total)


def run(name: str, sharding: str, per_device: int) -> tuple[ppo.PPOTrainer, dict]:
    cfg = compose(*PPO, f"algorithm.per_device_batch_size={per_device}")
    trainer = ppo.PPOTrainer(cfg.algorithm, base, cfg.model, prompts, rm, out / name, lambda m, s: None, cfg.seed,
                             sharding=sharding)
    seen = {"micro_batches": trainer.batch.accumulation, "gradient_elements": [], "clip": []}
    backward, clip = trainer.accelerator.backward, trainer.clip_gradients

    def counted_backward(loss, **kwargs):
        backward(loss, **kwargs)
        seen["gradient_elements"].append(gradient_elements(trainer.model))

    def observed_clip():  # per group: [norm measured here, norm clip_gradients reports, norm after clipping]
        groups = {"policy/grad_norm": trainer.model.policy, "val/grad_norm": trainer.model.value}
        measured = {k: norm(m.parameters()) for k, m in groups.items()}
        reported = clip()
        seen["clip"].append({k: [measured[k], float(reported[k]), norm(m.parameters())] for k, m in groups.items()})
        return reported

    trainer.accelerator.backward, trainer.clip_gradients = counted_backward, observed_clip
    seen["result"] = trainer.train()
    seen["history"] = trainer.history
    trained = [p for p in trainer.model.parameters() if p.requires_grad]
    seen["shard_elements"] = sum(local(p).numel() for p in trained)
    seen["parameters"] = sum(p.numel() for p in trained)
    units = [m._get_fsdp_state()._fsdp_param_group for m in trainer.model.modules() if isinstance(m, FSDPModule)]
    seen["offloaded"] = sorted({(p.offload_to_cpu, p.pin_memory) for group in units if group for p in group.fsdp_params})
    return trainer, seen


def grpo_generation() -> dict:
    """All-gathers per generation round, and the completions, of TRL's generation and of the project's, on the tiny
    policy sharded as accelerate shards it under conf/accelerate/fsdp.yaml."""
    cfg = compose("algorithm=grpo", "reward_model=tiny")
    trainer, tok, kept = grpo.build(cfg.algorithm, base, cfg.model, prompts, rm, out / "grpo", "none", "grpo", cfg.seed,
                                    cfg.prompts.max_prompt_tokens)
    settings = yaml.safe_load((CONF / "accelerate" / "fsdp.yaml").read_text())["fsdp_config"]
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, reshard_after_forward=settings["fsdp_reshard_after_forward"],
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=[settings["fsdp_transformer_layer_cls_to_wrap"]], cpu_ram_efficient_loading=False)
    # accelerate turns FSDP into plain data parallel on CPU (harness.train.sharding): its own preparation function,
    # given the plugin it would hold, shards the policy exactly as on GPUs
    fsdp2_prepare_model(types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=plugin), mixed_precision="no",
                                              is_main_process=dist.get_rank() == 0, device=torch.device("cpu")),
                        trainer.model)
    rank = dist.get_rank()
    rows, images, fields = trainer._tokenize_prompts([kept[i]["prompt"] for i in (rank, rank + 2)])  # as TRL does
    gathers = [0]
    all_gather = dist.all_gather_single  # what FSDP2's default all-gather calls (torch 2.13 _fsdp_collectives.py)

    def counting(*args, **kwargs):
        gathers[0] += 1
        return all_gather(*args, **kwargs)

    dist.all_gather_single = counting
    found = {}
    try:
        for name, generate in (("trl", lambda: GRPOTrainer._generate_single_turn(trainer, rows, images, fields, 1)),
                               ("project", lambda: trainer._generate_single_turn(rows, images, fields, 1)),
                               ("trl_after", lambda: GRPOTrainer._generate_single_turn(trainer, rows, images, fields, 1))):
            gathers[0] = 0
            torch.manual_seed(7)
            completions, _ = generate()
            found[name] = {"gathers": gathers[0], "completions": completions}
    finally:
        dist.all_gather_single = all_gather
    found["units"] = len({id(m._get_fsdp_state()) for m in trainer.model.modules() if isinstance(m, FSDPModule)})
    found["layers"] = trainer.model.config.num_hidden_layers
    return found


one_trainer, one = run("one", "fsdp", 8)
rank = one_trainer.accelerator.process_index
_, sharded = run("fsdp", "fsdp", 2)
_, offload = run("offload", "fsdp_offload", 2)
if rank == 0:  # the resumed run starts from the offload run's first checkpoint
    (out / "resumed" / "checkpoints").mkdir(parents=True)
    shutil.copytree(out / "offload" / "checkpoints" / "checkpoint-1", out / "resumed" / "checkpoints" / "checkpoint-1")
dist.barrier()
_, resumed = run("resumed", "fsdp_offload", 2)
generation = grpo_generation()
(out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "one": one, "fsdp": sharded, "offload": offload,
                                                  "resumed": resumed, "grpo": generation}, default=str))
dist.destroy_process_group()
