"""Each process's models sit on that process's device: DPO and GRPO load them after the trainer config has set it
(before, every rank of a GPU node loaded onto cuda:0). On CPU every device is "cpu", so this runs the multi-process
construction path for real but can only tell devices apart on a multi-GPU node."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_rank_loads_its_models_on_its_own_device(tiny_base, tiny_reward_model, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(port), str(ROOT / "tests" / "placement_worker.py"),
           tiny_base.path, tiny_reward_model.ref.path, str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        device = report.pop("rank_device")
        assert report == dict.fromkeys(report, device), (rank, report)
        assert set(report) == {"dpo_policy", "dpo_reference", "grpo_policy", "grpo_reward_model"}
