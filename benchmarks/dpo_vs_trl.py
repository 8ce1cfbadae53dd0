"""The harness's DPO stage against TRL's DPOTrainer run directly on the same model, pairs and recipe.

    python benchmarks/dpo_vs_trl.py [--repeats N] [hydra overrides...]     # default: the tiny model and data on CPU

The harness side is harness.train.dpo.train (held-out scoring before and after, checkpoints, the saved model); the
direct side builds DPOConfig from the same recipe and calls DPOTrainer.train() alone. Prints both wall times (best of
--repeats) and their ratio: the harness's overhead over TRL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from hydra import compose, initialize_config_dir  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

import harness.config.schema  # noqa: E402,F401
from harness.models import base_model, load_causal_lm, load_tokenizer  # noqa: E402
from harness.pipeline import fit_training_data, load_training_data  # noqa: E402
from harness.train import dpo  # noqa: E402
from harness.train.common import trainer_kwargs  # noqa: E402

CONF = Path(__file__).resolve().parent.parent / "conf"


def direct(cfg, base, train_ds, out_dir: Path) -> None:
    alg = cfg.algorithm
    args = DPOConfig(**trainer_kwargs(alg, out_dir, cfg.model.dtype, "none", "direct", cfg.seed), beta=alg.beta,
                     loss_type=[alg.loss_type], max_length=alg.max_length,
                     precompute_ref_log_probs=alg.precompute_ref_log_probs)
    model, tok = load_causal_lm(base, cfg.model.dtype), load_tokenizer(base, cfg.model.chat_template)
    DPOTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok).train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.home={home}", "tracking=none", "algorithm=dpo", *args.overrides])
        base, _ = base_model(cfg.model, cfg.paths.stages)
        inputs = fit_training_data(cfg, load_training_data(cfg), base)
        times = {"harness": float("inf"), "trl": float("inf")}
        for i in range(args.repeats):
            for name in times:
                start = time.perf_counter()
                if name == "harness":
                    dpo.train(cfg.algorithm, base, cfg.model, inputs.train, inputs.heldout, Path(home) / f"h{i}",
                              "none", "benchmark", cfg.seed)
                else:
                    direct(cfg, base, inputs.train, Path(home) / f"t{i}")
                times[name] = min(times[name], time.perf_counter() - start)
    print(f"harness DPO stage   {times['harness']:7.1f} s  (held-out scoring before and after, checkpoints, save)")
    print(f"TRL DPOTrainer      {times['trl']:7.1f} s")
    print(f"ratio harness / TRL: {times['harness'] / times['trl']:.2f}")


if __name__ == "__main__":
    main()
