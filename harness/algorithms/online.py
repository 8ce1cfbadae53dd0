"""What the online algorithms (PPO, GRPO) share: they sample from the policy on a prompt set and score the samples
with a reward model; Table 2's switch (`algorithm.table2=true`) takes the reward model and the prompts from the
run's own preference dataset."""

from __future__ import annotations

from omegaconf import OmegaConf

from harness.algorithms import Algorithm, TrainingData


class OnlineAlgorithm(Algorithm):
    axes = ("model", "algorithm", "reward_model", "prompts")
    trains = True

    def axes_read(self, alg) -> tuple[str, ...]:
        if alg.get("table2", False):  # the reward model and the prompts come from the dataset
            return (*(a for a in self.axes if a != "prompts"), "dataset")
        return self.axes

    def uses_reward_model(self, alg) -> bool:
        return True

    def load_prompts(self, cfg):
        from harness import data  # imports `datasets`: here, not at import (the registry stays import-light)

        prompts_cfg = cfg.prompts
        if cfg.algorithm.get("table2", False):  # Table 2: the policy's prompts are those of the run's own data
            prompts_cfg = OmegaConf.merge(cfg.prompts, {"name": "from_dataset", "source": "from_dataset", "max_samples": None})
        return data.load_prompts(prompts_cfg, cfg.paths.mirror, dataset_cfg=cfg.dataset, cache=cfg.paths.stages)

    def load_inputs(self, cfg, reward_model) -> TrainingData:
        return TrainingData(self.load_prompts(cfg), reward_model=reward_model)
