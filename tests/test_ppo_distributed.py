"""PPO data-parallel under torch.distributed (2 CPU processes, gloo): the recipe's batch is split across processes and
the replicas stay identical."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from direction import max_weight_change

ROOT = Path(__file__).resolve().parent.parent


def test_two_processes_share_the_batch_and_stay_in_sync(tiny_base, tiny_reward_model, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    # --standalone: the rendezvous store binds port 0 itself, so no free port is picked, closed and raced for
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", str(ROOT / "tests" / "ppo_ddp_worker.py"),
           tiny_base.path, tiny_reward_model.ref.path, str(tmp_path), "algorithm.max_steps=2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        # effective batch 16 = 8 per process x 2 processes; each process samples half of the 32-prompt rollout
        assert (r["processes"], r["per_device_batch_size"], r["gradient_accumulation_steps"]) == (2, 8, 1)
        assert r["prompts_seen"] == 16 and r["global_step"] == 4
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # gradients were averaged: one model, two replicas
    assert ranks[0]["initial_checksum"] == ranks[1]["initial_checksum"] != ranks[0]["checksum"]  # and a step moved it
    assert max_weight_change(tmp_path / "model", tiny_base.path) > 0  # the saved policy is the trained one
    assert ranks[0]["logged"] == [1, 2] and ranks[1]["logged"] == []  # metrics are logged by the main process only
    assert (tmp_path / "model" / "model.safetensors").exists()
