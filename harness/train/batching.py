"""Effective batch size is the recipe's value; micro-batch and accumulation are derived from the process count.

Moving a run from 8 GPUs to 1 keeps `per_device x accumulation x processes == effective` (it changes accumulation),
so the recipe never changes silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    effective: int
    per_device: int
    accumulation: int
    processes: int


def world_size() -> int:
    """Processes of this training job (torchrun / accelerate set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def plan(effective: int, per_device_max: int, processes: int | None = None) -> BatchPlan:
    """Largest micro-batch <= per_device_max that divides effective / processes exactly."""
    processes = processes or world_size()
    if effective < 1 or per_device_max < 1:
        raise ValueError(f"effective_batch_size={effective} and per_device_batch_size={per_device_max} must be >= 1")
    if effective % processes:
        raise ValueError(
            f"effective_batch_size={effective} is not divisible by the {processes} training processes; "
            f"choose a multiple of {processes}"
        )
    per_process = effective // processes
    per_device = max(d for d in range(1, min(per_device_max, per_process) + 1) if per_process % d == 0)
    return BatchPlan(effective, per_device, per_process // per_device, processes)
