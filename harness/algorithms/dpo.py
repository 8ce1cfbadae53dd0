"""DPO (Rafailov et al. 2023) on the run's preference data, through TRL's DPOTrainer (harness.train.dpo).

    python -m harness algorithm=dpo dataset=ultrafeedback_fg model=tulu2_13b eval=paper
"""

from __future__ import annotations

from harness.algorithms import Algorithm, TrainingData
from harness.config.errors import ConfigError


class DPO(Algorithm):
    name = "dpo"
    axes = ("model", "dataset", "algorithm")
    trains = True

    def check(self, cfg) -> None:
        from harness.config.groups import options

        every = cfg.algorithm.get("eval_every", 0)
        if every < 0:
            raise ConfigError(f"algorithm.eval_every={every}: the steps between curve evaluations, >= 1 (0: no curve)")
        if every and cfg.launch.processes * cfg.launch.nodes > 1:
            raise ConfigError(f"algorithm.eval_every={every} saves the model of the training process, so it needs "
                              "single-process training: set launch.processes=1 launch.nodes=1, or algorithm.eval_every=0")
        if every and cfg.algorithm.curve_suite not in options("eval"):
            raise ConfigError(f"algorithm.curve_suite={cfg.algorithm.curve_suite!r} is not a conf/eval suite; valid: "
                              f"{options('eval')}")
        if cfg.reward_model.name != "none":
            raise ConfigError(
                f"algorithm={cfg.algorithm.name} learns from preference pairs directly and uses no reward model, but "
                f"reward_model={cfg.reward_model.name}; set reward_model=none, or use algorithm=ppo or algorithm=grpo "
                "with a reward model")

    def load_inputs(self, cfg, reward_model) -> TrainingData:
        from harness import data  # imports `datasets`: here, not at import (the registry stays import-light)

        load = lambda split: data.prepare_preferences(cfg.dataset, split, cfg.paths.mirror, cfg.paths.stages)  # noqa: E731
        train = load(None)
        heldout = load(cfg.dataset.eval_split) if cfg.dataset.eval_split else None
        return TrainingData(train.dataset, heldout and heldout.dataset, {"prepared": (train, heldout)}, reward_model)

    def fit_inputs(self, cfg, inputs: TrainingData, base) -> TrainingData:
        """Drop pairs longer than the recipe's max length when it says so (algorithm.drop_overlength; needs the base
        model's tokenizer); the counts, and the loader's, become training metrics."""
        from harness import data
        from harness.models import load_tokenizer

        tok = load_tokenizer(base, cfg.model.chat_template)
        tok_id = {"model": base.key or [base.path, base.revision], "chat_template": cfg.model.chat_template}
        fit = lambda p: data.drop_overlength(p, tok, cfg.algorithm.max_length, cfg.dataset.max_bad_fraction,  # noqa: E731
                                             tok_id, cfg.paths.stages)
        train, heldout = inputs.extra["prepared"]
        if cfg.algorithm.get("drop_overlength", True):
            train, heldout = fit(train), heldout and fit(heldout)
        counts = train.report.metrics("data") | (heldout.report.metrics("heldout_data") if heldout else {})
        return TrainingData(train.dataset, heldout and heldout.dataset, {"data_counts": counts}, inputs.reward_model)

    def train(self, cfg, base, inputs, out_dir, reward_model, report_to, run_id, log) -> dict:
        from harness.train import dpo

        return dpo.train(cfg.algorithm, base, cfg.model, inputs.train, inputs.heldout, out_dir, report_to, run_id,
                         cfg.seed)


ALGORITHM = DPO()
