"""Jobs of several nodes: the Slurm job runs the harness once on its first node, which starts one `accelerate launch`
per node with srun, all meeting at a c10d rendezvous on the first node, the effective batch kept over every process.
Checked on the composed sbatch file and commands (the local Slurm cluster has one node)."""

from __future__ import annotations

import shlex
import subprocess

import pytest
import submitit
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

from harness.train.batching import plan
from harness.config.errors import ConfigError
from harness.train import processes
from harness.sweep.launcher import profile_overrides, submitit_parameters
from harness.sweep.plan import slurm_profiles


def on_node(line: str, node: int) -> list[str]:
    """The launcher's arguments as the shell srun starts on node `node` sees them."""
    done = subprocess.run(["bash", "-c", f"printf '%s\\n' {line}"], env={"SLURM_NODEID": str(node)},
                          capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_one_launcher_per_node_with_a_c10d_rendezvous_on_the_first(tmp_path):
    cmd = processes.command(8, None, tmp_path, nodes=4, head="gpu-017", port=29512)
    assert cmd[:8] == ["srun", "--overlap", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                       "bash", "-c"]
    for node in range(4):
        args = on_node(cmd[8], node)
        assert option(args, "--machine_rank") == str(node)
        assert option(args, "--num_machines") == "4" and option(args, "--num_processes") == "32"  # world = 4 x 8
        assert (option(args, "--main_process_ip"), option(args, "--main_process_port")) == ("gpu-017", "29512")
        assert option(args, "--rdzv_backend") == "c10d"
        assert args[-3:] == ["-m", "harness.train.processes", str(tmp_path)]
    # the effective batch (the recipe's) is kept over all 32 processes: accumulation shrinks, nothing else
    for world in (8, 32):
        b = plan(64, 1, world)
        assert b.per_device * b.accumulation * b.processes == 64
    one = processes.command(8, None, tmp_path, port=29512)
    assert one[0] != "srun" and option(one, "--num_machines") == "1" and "--machine_rank" not in one


def test_a_multi_node_profile_reaches_the_sbatch_file_and_the_run(tmp_path):
    profile = slurm_profiles()["train_70b_2nodes"]
    assert profile_overrides(profile) == ["launch.processes=8", "launch.nodes=2", "launch.sharding=fsdp_offload"]
    params = submitit_parameters(profile, {"partition": "gpu"})
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path)  # as the Slurm launcher builds it
    base = set(BaseQueueConf.__dataclass_fields__)
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    text = executor._executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --gpus-per-node=8" in text
    srun = next(line for line in text.splitlines() if line.startswith("srun "))
    words = shlex.split(srun)
    assert words[words.index("python") - 2 : words.index("python")] == ["--nodes=1", "--ntasks=1"]  # harness runs once


def test_a_multi_node_run_outside_such_a_job_is_refused(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_NUM_NODES", raising=False)
    with pytest.raises(ConfigError, match="launch.nodes=2 needs a Slurm job of 2 nodes"):
        processes.head_node(2)
    assert processes.head_node(1) == "127.0.0.1"
