"""Each process's models sit on that process's device: DPO and GRPO load them after the trainer config has set it
(before, every rank of a GPU node loaded onto cuda:0). On CPU every device is "cpu", so this runs the multi-process
construction path for real but can only tell devices apart on a multi-GPU node."""

import json

from conftest import torchrun_two



def test_every_rank_loads_its_models_on_its_own_device(tiny_base, tiny_reward_model, tmp_path):
    torchrun_two("placement_worker.py", tiny_base.path, tiny_reward_model.ref.path, str(tmp_path))
    for rank in (0, 1):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        device = report.pop("rank_device")
        assert report == dict.fromkeys(report, device), (rank, report)
        assert set(report) == {"dpo_policy", "dpo_reference", "grpo_policy", "grpo_reward_model"}
