"""GRPO (Shao et al. 2024) through TRL's GRPOTrainer (harness.train.grpo): groups of samples per prompt, advantages
relative to the group, on the reward model's score, GSM8k answer correctness, or both. Not in the paper.

    python -m harness algorithm=grpo reward_model=uf_13b prompts=uf model=tulu2_13b
    python -m harness algorithm=grpo algorithm.reward=gsm8k prompts=gsm8k        # verifiable reward, no reward model
"""

from __future__ import annotations

from harness.algorithms import TrainingData
from harness.algorithms.online import OnlineAlgorithm
from harness.config.errors import ConfigError
from harness.config.schema import GRPO_REWARDS


class GRPO(OnlineAlgorithm):
    name = "grpo"

    def uses_reward_model(self, alg) -> bool:
        return alg.reward != "gsm8k"  # the GSM8k reward alone reads gold answers, no reward model

    def check(self, cfg) -> None:
        if cfg.algorithm.reward not in GRPO_REWARDS:
            raise ConfigError(f"algorithm.reward={cfg.algorithm.reward!r}; valid: {list(GRPO_REWARDS)}")

    def load_inputs(self, cfg, reward_model) -> TrainingData:
        from harness.train import grpo

        # The GSM8k reward's gold answers, joined to the prompts now (a prompt without one fails here).
        prompts = grpo.with_answers(cfg.algorithm, self.load_prompts(cfg), cfg.paths.mirror)
        return TrainingData(prompts, reward_model=reward_model)

    def train(self, cfg, base, inputs, out_dir, reward_model, report_to, run_id, log) -> dict:
        from harness.train import grpo

        return grpo.train(cfg.algorithm, base, cfg.model, inputs.train, reward_model, out_dir, report_to, run_id,
                          cfg.seed, cfg.prompts.max_prompt_tokens, cfg.paths.mirror)


ALGORITHM = GRPO()
