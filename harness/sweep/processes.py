"""Training on several processes inside one job, torchrun-style, through `accelerate launch`.

    python -m harness launch.processes=2                                    # 2 CPU processes (gloo) here
    python -m harness model=tulu2_13b ... launch.processes=8 launch.sharding=fsdp   # 8 GPUs, FSDP2 (harness.train.sharding)

The run's own process holds the stage lock and waits: `accelerate launch` starts N copies of this module, each loads
the run config saved in the stage directory and trains its share of every batch; rank 0 writes the stage result.
harness.batching reads WORLD_SIZE, so per-device batch x accumulation x processes stays the recipe's effective batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from harness.train import common, sharding


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(processes: int, config: Path | None, stage_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes), "--num_machines", "1",
           "--main_process_port", str(_free_port())]
    # Without a config file: plain data parallel through torch.distributed.run (gloo on CPU, NCCL on GPUs).
    cmd += ["--config_file", str(config)] if config else ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return cmd + ["-m", "harness.sweep.processes", str(stage_dir)]


def train(cfg, base, reward_model, stage_dir: Path, run_id: str, mlflow_run_id: str | None) -> dict:
    """Train the run's policy on cfg.launch.processes processes; returns rank 0's stage result."""
    launch_dir = Path(stage_dir) / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    (launch_dir / "result.json").unlink(missing_ok=True)
    OmegaConf.save(cfg, launch_dir / "config.yaml", resolve=True)
    rm = reward_model and {"ref": vars(reward_model.ref), "chat_template": reward_model.chat_template}
    (launch_dir / "job.json").write_text(json.dumps({"base": vars(base), "reward_model": rm, "run_id": run_id}))
    env = dict(os.environ)
    if mlflow_run_id:  # rank 0's trainer logs its curves into the run's MLflow run (transformers' MLflowCallback)
        env |= {"MLFLOW_RUN_ID": mlflow_run_id, "MLFLOW_TRACKING_URI": cfg.tracking.uri}
    alg = cfg.algorithm.name
    sharding.check_runnable(alg, cfg.launch.sharding, torch.cuda.is_available())  # before any process starts
    cmd = command(cfg.launch.processes, sharding.accelerate_config(alg, cfg.launch.sharding), Path(stage_dir))
    print(f"[harness] training on {cfg.launch.processes} processes: {' '.join(cmd)}", flush=True)
    with open(launch_dir / "processes.log", "w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{cfg.launch.processes}-process training failed (exit {done.returncode}); "
                           f"log: {launch_dir / 'processes.log'}")
    result = json.loads((launch_dir / "result.json").read_text())
    common.STEPS_THIS_PROCESS["count"] += result.pop("steps_this_process")  # steps this run took, as one process counts
    return result


def worker(stage_dir: Path) -> None:
    """One training process: the same training code a single-process run calls."""
    from harness.models import ModelRef
    from harness.pipeline import fit_training_data, load_training_data, train_in_process
    from harness.stages import write_atomic
    from harness.train.reward import RewardModel

    launch_dir = stage_dir / "launch"
    cfg = OmegaConf.load(launch_dir / "config.yaml")
    job = json.loads((launch_dir / "job.json").read_text())
    base = ModelRef(**job["base"])
    rm = job["reward_model"] and RewardModel(ModelRef(**job["reward_model"]["ref"]), job["reward_model"]["chat_template"], {})
    report_to = "mlflow" if os.environ.get("MLFLOW_RUN_ID") else "none"
    inputs = fit_training_data(cfg, load_training_data(cfg), base)  # the same rows a single-process run trains on
    result = train_in_process(cfg, base, inputs, stage_dir, rm, report_to, job["run_id"])
    if int(os.environ.get("RANK", "0")) == 0:
        result["steps_this_process"] = common.STEPS_THIS_PROCESS["count"]
        write_atomic(launch_dir / "result.json", json.dumps(result, default=str))


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
