"""PPO as the paper ran it, in the project's own trainer (harness.train.ppo): policy and value model, per-token KL
against the SFT reference, the reward model's score at the end of each response.

    python -m harness algorithm=ppo reward_model=uf_13b prompts=uf model=tulu2_13b eval=paper
"""

from __future__ import annotations

from harness.algorithms.online import OnlineAlgorithm
from harness.config.errors import ConfigError


class PPO(OnlineAlgorithm):
    name = "ppo"

    def check(self, cfg) -> None:
        alg = cfg.algorithm
        if alg.minibatch_size != alg.effective_batch_size:
            raise ConfigError(f"algorithm.minibatch_size={alg.minibatch_size} differs from "
                              f"algorithm.effective_batch_size={alg.effective_batch_size}: they are the same number "
                              "(examples per optimiser step); set effective_batch_size only")

    def train(self, cfg, base, inputs, out_dir, reward_model, report_to, run_id, log) -> dict:
        from harness.train import ppo

        return ppo.train(cfg.algorithm, base, cfg.model, inputs.train, reward_model, out_dir, log, cfg.seed,
                         cfg.prompts.max_prompt_tokens, cfg.launch.sharding)


ALGORITHM = PPO()
