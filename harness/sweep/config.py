"""Config schemas of the harness's Hydra sweeper and launchers (the classes they name live in hydra_plugins/harness_sweep).

They live in an importable module, not in the plugin module Hydra loads by path, so that submitit pickles them by
reference: a requeued job re-pickles its launcher and must find the same classes.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.harness_sweep.sweep_plugins.GridSweeper"
    max_batch_size: Optional[int] = None
    # Shared by every grid (Hydra's own sweeper key): override -> value or sweep ("a,b,c").
    params: Optional[Dict[str, Any]] = None
    # Named cartesian grids whose union is the sweep (harness.sweep.grid); empty: `params` alone, as Hydra's basic sweeper.
    grids: Optional[Dict[str, Dict[str, Any]]] = None


@dataclass
class ResourceProfile:
    # Stage kinds this profile may run (model, reward_model, policy, eval).
    kinds: List[str] = field(default_factory=lambda: ["model", "reward_model", "policy", "eval"])
    # Largest model (billions of parameters) a stage of this profile holds.
    max_params_b: float = MISSING
    # Nodes of the job: one launcher per node (srun), c10d rendezvous (harness/train/processes.py).
    nodes: int = 1
    gpus_per_node: int = 0
    # Memory of one GPU (the memory plan, harness/sweep/memory.py).
    gpu_mem_gb: float = 80.0
    cpus_per_task: int = 2
    mem_gb: Optional[int] = None
    timeout_min: int = 60
    # Training processes in the job (launch.processes); null: one per GPU.
    processes: Optional[int] = None
    # How those processes share the models (launch.sharding: none | fsdp | fsdp_offload | zero3 | zero3_offload).
    sharding: str = "none"


@dataclass
class HarnessLocalConf:
    _target_: str = "hydra_plugins.harness_sweep.sweep_plugins.LocalLauncher"
    # Launch runs that are already recorded with every benchmark scored (normally skipped).
    rerun_complete: bool = False


@dataclass
class HarnessSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.harness_sweep.sweep_plugins.SlurmLauncher"
    # Block until every job ends and print the summary (Hydra's behaviour); false: submit, write sweep.json, exit.
    wait: bool = True
    rerun_complete: bool = False
    # Named resource profiles from the smallest to the largest: a job gets the largest one its incomplete stages need.
    resources: Dict[str, ResourceProfile] = field(default_factory=dict)


def register() -> None:
    """`hydra/sweeper=grids`, `hydra/launcher=harness_local|harness_slurm` in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name="grids", node=GridSweeperConf, provider="harness")
    cs.store(group="hydra/launcher", name="harness_local", node=HarnessLocalConf, provider="harness")
    cs.store(group="hydra/launcher", name="harness_slurm", node=HarnessSlurmConf, provider="harness")


register()
