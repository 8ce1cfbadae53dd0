"""`launch.sharding`: how a job's training processes share its models, and which engine does it.

    none           data parallel: every process holds whole models (DDP; gloo on CPU, NCCL on GPUs)
    fsdp           full sharding of parameters, gradients and optimiser states with torch FSDP2:
                     PPO       the project's own FSDP2 code (harness/train/fsdp.py), policy, value, reference and reward
                               model all sharded
                     DPO, reward model, GRPO   accelerate's FSDP2 plugin (conf/accelerate/fsdp.yaml), gradients
                               reduced in fp32 and reduce-scattered every micro-batch (accelerate_fsdp_overrides)
    fsdp_offload   fsdp with parameters and optimiser states in CPU memory (70B on one node)
    zero3          DeepSpeed ZeRO-3 through accelerate (conf/accelerate/zero3.yaml); TRL trainers only
    zero3_offload  ZeRO-3 with CPU offload (conf/accelerate/zero3_offload.yaml); TRL trainers only

A combination that cannot run where it starts fails at start with the reason (`check` when the run is composed,
`check_runnable` in the job before its processes start): accelerate silently turns FSDP and DeepSpeed into plain data
parallel on CPU (shared/notes/conformance/scale.md, Q2), so the TRL trainers' sharded configs need GPUs; the DeepSpeed
ones need deepspeed installed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from harness.config.errors import ConfigError

SHARDINGS = ("none", "fsdp", "fsdp_offload", "zero3", "zero3_offload")
# The project's PPO shards with FSDP2 itself (DeepSpeed would need accelerate's engine, which PPO does not use).
PPO_SHARDINGS = ("none", "fsdp", "fsdp_offload")
ACCELERATE_CONFIGS = Path(__file__).resolve().parents[2] / "conf" / "accelerate"


def check_ppo_sharding(sharding: str) -> None:
    if sharding not in PPO_SHARDINGS:
        raise ConfigError(f"launch.sharding={sharding!r}: the project's PPO shards with torch FSDP2 "
                          f"(harness/train/fsdp.py), not DeepSpeed; use one of {list(PPO_SHARDINGS)}")


def check(algorithm: str, sharding: str, processes: int) -> None:
    """Static checks (no hardware needed): run when the run is composed, also on a submit host. `processes`: all of
    the job's (nodes x processes per node)."""
    if sharding not in SHARDINGS:
        raise ConfigError(f"launch.sharding={sharding!r}; valid: {list(SHARDINGS)}")
    if sharding != "none" and processes < 2:
        raise ConfigError(f"launch.sharding={sharding} shards over several processes, but launch.processes={processes}; "
                          "set launch.processes to the job's GPUs (a Slurm profile does) or launch.sharding=none")
    if algorithm == "ppo":
        check_ppo_sharding(sharding)


def accelerate_config(trainer: str, sharding: str) -> Path | None:
    """The accelerate config the job's processes start with (`trainer`: the policy's algorithm, or "reward_model");
    None: plain multi-process launch (PPO always, since it shards itself; and sharding=none)."""
    if trainer == "ppo" or sharding == "none":
        return None
    return ACCELERATE_CONFIGS / f"{sharding}.yaml"


def _who(trainer: str) -> str:
    return "reward-model training" if trainer == "reward_model" else f"algorithm={trainer}"


def check_runnable(trainer: str, sharding: str, cuda: bool) -> None:
    """Checks in the job itself, where the hardware is known, before any process starts."""
    config = accelerate_config(trainer, sharding)
    if config is None:
        return
    if not cuda:
        raise ConfigError(f"launch.sharding={sharding} for {_who(trainer)} runs through accelerate, which on a "
                          "machine without GPUs silently trains plain data parallel instead (every process holding whole "
                          "models); run it on GPU nodes, or set launch.sharding=none here")
    if sharding.startswith("zero3") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"launch.sharding={sharding} needs DeepSpeed, which is not installed in this environment "
                          "(pip install deepspeed); or use launch.sharding=fsdp (torch FSDP2, no extra package)")


def accelerate_fsdp_overrides(environ=os.environ) -> dict:
    """What a TRL trainer's arguments change when `accelerate launch` started this process with an FSDP config
    (ACCELERATE_USE_FSDP; its settings arrive as FSDP_* variables), empty otherwise:
    - `fsdp_plugin_args`: the plugin built from those variables, with a mixed-precision policy that gathers parameters
      in the compute dtype but reduces gradients in fp32. accelerate's own, from `mixed_precision: bf16`, reduces in
      bf16 (accelerate 1.15 utils/dataclasses.py FullyShardedDataParallelPlugin.set_mixed_precision:
      reduce_dtype = param_dtype), so gradients would be summed over ranks and micro-batches in bf16. A policy given
      with the plugin is kept (set_mixed_precision leaves a set policy alone unless told to override).
    - `sync_each_batch`: gradients reduce-scattered after every micro-batch, so that a rank holds only its shard of
      them; the Trainer's default defers the reduction to the last micro-batch of an optimiser step (accelerate's
      no_sync: FSDP2's set_requires_gradient_sync(False)), and FSDP2 then keeps every gradient whole, in fp32, on every
      rank (shared/notes/conformance/scale-2.md, A and E)."""
    if environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return {}
    import torch  # here: composing a run (harness.config.checks) imports this module, and no ML library

    compute = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(environ.get("ACCELERATE_MIXED_PRECISION", "no"))
    plugin = {} if compute is None else {
        "mixed_precision_policy": {"param_dtype": compute, "reduce_dtype": torch.float32, "output_dtype": compute}}
    return {"fsdp_plugin_args": plugin, "gradient_accumulation_kwargs": {"sync_each_batch": True}}
