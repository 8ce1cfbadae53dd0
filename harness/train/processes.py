"""Training on several processes inside one job, torchrun-style, through `accelerate launch`.

    python -m harness launch.processes=2                                    # 2 CPU processes (gloo) here
    python -m harness model=tulu2_13b ... launch.processes=8 launch.sharding=fsdp   # 8 GPUs, FSDP2 (harness.train.sharding)

Both training stages go through it: the policy, and a reward model trained for the run (TRL's RewardTrainer, under
accelerate's config for `launch.sharding`, as DPO). The run's own process holds the stage lock and waits:
`accelerate launch` starts N copies of this module, each loads the run config and the job saved in the stage
directory and trains its share of every batch; rank 0 writes the stage result.
harness.train.batching reads WORLD_SIZE, so per-device batch x accumulation x processes stays the recipe's effective batch.
With `launch.nodes=N` (a Slurm job of N nodes, harness.sweep.launcher) the run starts one `accelerate launch` per
node through srun, meeting at a c10d rendezvous on the job's first node; WORLD_SIZE counts every node's processes.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from harness.config.errors import ConfigError
from harness.train import common, sharding


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Each node's shell expands it to the node's index in the job (srun sets it per task).
NODE_RANK = "$SLURM_NODEID"


def command(processes: int, config: Path | None, stage_dir: Path, nodes: int = 1, head: str = "127.0.0.1",
            port: int | None = None) -> list[str]:
    """`accelerate launch` of `processes` per node; over several nodes, one launcher per node through srun, all
    meeting at a c10d rendezvous on `head` (the job's first node, where this process runs)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes * nodes),
           "--num_machines", str(nodes), "--main_process_port", str(port or _free_port())]
    if nodes > 1:
        cmd += ["--machine_rank", NODE_RANK, "--main_process_ip", head, "--rdzv_backend", "c10d"]
    # Without a config file: plain data parallel through torch.distributed.run (gloo on CPU, NCCL on GPUs).
    cmd += ["--config_file", str(config)] if config else ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["-m", "harness.train.processes", str(stage_dir)]
    if nodes == 1:
        return cmd
    # --overlap: the job's own step (this process) keeps running on the first node beside its launcher.
    line = " ".join(a if a == NODE_RANK else shlex.quote(a) for a in cmd)
    return ["srun", "--overlap", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "bash", "-c", line]


def head_node(nodes: int) -> str:
    """The first node of this Slurm job (it hosts the rendezvous); refuses a job that is not the size it claims."""
    if nodes == 1:
        return "127.0.0.1"
    have = os.environ.get("SLURM_JOB_NUM_NODES")
    if have is None or int(have) != nodes:
        raise ConfigError(f"launch.nodes={nodes} needs a Slurm job of {nodes} nodes (SLURM_JOB_NUM_NODES={have}); run it "
                          "through hydra/launcher=slurm with a resource profile of nodes: {nodes}")
    names = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]], capture_output=True,
                           text=True, check=True).stdout.split()
    return names[0]


def several(launch) -> bool:
    """Whether a job trains on several processes (launch.processes per node x launch.nodes)."""
    return launch.processes * launch.nodes > 1


def policy_job(base, reward_model, run_id: str) -> dict:
    """What a launched process needs to train the run's policy (beside the run config)."""
    rm = reward_model and {"ref": vars(reward_model.ref), "chat_template": reward_model.chat_template}
    return {"stage": "policy", "base": vars(base), "reward_model": rm, "run_id": run_id}


def reward_model_job(base, run_name: str) -> dict:
    """What a launched process needs to train the run's reward model (its plan comes from the run config)."""
    return {"stage": "reward_model", "base": vars(base), "run_id": run_name}


def trainer_of(cfg, job: dict) -> str:
    """Whose launch this is, for harness.train.sharding: the policy's algorithm, or the reward model's trainer."""
    return cfg.algorithm.name if job["stage"] == "policy" else "reward_model"


def train(cfg, stage_dir: Path, job: dict, mlflow_run_id: str | None) -> dict:
    """Train one stage of run `cfg` (`job`: policy_job or reward_model_job) on cfg.launch.processes processes per
    node; returns rank 0's stage result."""
    launch_dir = Path(stage_dir) / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    (launch_dir / "result.json").unlink(missing_ok=True)
    OmegaConf.save(cfg, launch_dir / "config.yaml", resolve=True)
    (launch_dir / "job.json").write_text(json.dumps(job))
    env = dict(os.environ)
    if mlflow_run_id:  # rank 0's trainer logs its curves into the run's MLflow run (transformers' MLflowCallback)
        env |= {"MLFLOW_RUN_ID": mlflow_run_id, "MLFLOW_TRACKING_URI": cfg.tracking.uri}
    trainer = trainer_of(cfg, job)
    sharding.check_runnable(trainer, cfg.launch.sharding, torch.cuda.is_available())  # before any process starts
    nodes = cfg.launch.nodes
    cmd = command(cfg.launch.processes, sharding.accelerate_config(trainer, cfg.launch.sharding), Path(stage_dir), nodes,
                  head_node(nodes))
    print(f"[harness] training the {job['stage'].replace('_', ' ')} on {nodes} x {cfg.launch.processes} processes: "
          f"{' '.join(cmd)}", flush=True)
    with open(launch_dir / "processes.log", "w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{cfg.launch.processes}-process training failed (exit {done.returncode}); "
                           f"log: {launch_dir / 'processes.log'}")
    result = json.loads((launch_dir / "result.json").read_text())
    common.STEPS_THIS_PROCESS["count"] += result.pop("steps_this_process")  # steps this run took, as one process counts
    return result


def train_policy(cfg, base, job: dict, stage_dir: Path, report_to: str) -> dict:
    from harness import algorithms
    from harness.models import ModelRef
    from harness.train.reward import RewardModel

    rm = job["reward_model"] and RewardModel(ModelRef(**job["reward_model"]["ref"]), job["reward_model"]["chat_template"], {})
    algorithm = algorithms.get(cfg.algorithm)
    # The same rows a single-process run trains on (the reward model is trained already: its plan is not needed).
    inputs = algorithm.fit_inputs(cfg, algorithm.load_inputs(cfg, None), base)
    return algorithm.train(cfg, base, inputs, stage_dir, rm, report_to, job["run_id"], lambda metrics, step: None)


def train_reward_model(cfg, base, job: dict, stage_dir: Path, report_to: str) -> dict:
    from harness.train import reward

    p = reward.plan(cfg, getattr(cfg.algorithm, "table2", False))  # the same pairs a single-process run trains on
    return reward.train(p.cfg, base, p.model, p.train, p.heldout, stage_dir, report_to, job["run_id"])


STAGES = {"policy": train_policy, "reward_model": train_reward_model}


def worker(stage_dir: Path) -> None:
    """One training process: the same training code a single-process run calls."""
    from harness.models import ModelRef
    from harness.records.stages import write_atomic

    launch_dir = stage_dir / "launch"
    cfg = OmegaConf.load(launch_dir / "config.yaml")
    job = json.loads((launch_dir / "job.json").read_text())
    report_to = "mlflow" if os.environ.get("MLFLOW_RUN_ID") else "none"
    result = STAGES[job["stage"]](cfg, ModelRef(**job["base"]), job, stage_dir, report_to)
    if int(os.environ.get("RANK", "0")) == 0:
        result["steps_this_process"] = common.STEPS_THIS_PROCESS["count"]
        write_atomic(launch_dir / "result.json", json.dumps(result, default=str))


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
