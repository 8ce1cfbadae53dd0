"""`launch.sharding`: how a job's training processes share its models, and which engine does it.

    none           data parallel: every process holds whole models (DDP; gloo on CPU, NCCL on GPUs)
    fsdp           full sharding of parameters, gradients and optimiser states with torch FSDP2:
                     PPO       the project's own FSDP2 code (harness/train/fsdp.py), policy, value, reference and reward
                               model all sharded
                     DPO, reward model, GRPO   accelerate's FSDP2 plugin (conf/accelerate/fsdp.yaml)
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


def accelerate_config(algorithm: str, sharding: str) -> Path | None:
    """The accelerate config the job's processes start with; None: plain multi-process launch (PPO always, since it
    shards itself; and sharding=none)."""
    if algorithm == "ppo" or sharding == "none":
        return None
    return ACCELERATE_CONFIGS / f"{sharding}.yaml"


def check_runnable(algorithm: str, sharding: str, cuda: bool) -> None:
    """Checks in the job itself, where the hardware is known, before any process starts."""
    config = accelerate_config(algorithm, sharding)
    if config is None:
        return
    if not cuda:
        raise ConfigError(f"launch.sharding={sharding} for algorithm={algorithm} runs through accelerate, which on a "
                          "machine without GPUs silently trains plain data parallel instead (every process holding whole "
                          "models); run it on GPU nodes, or set launch.sharding=none here")
    if sharding.startswith("zero3") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"launch.sharding={sharding} needs DeepSpeed, which is not installed in this environment "
                          "(pip install deepspeed); or use launch.sharding=fsdp (torch FSDP2, no extra package)")
