"""DPO tokens/s with reference log-probs computed per step (plain) and once before training (precompute, the default).

    python benchmarks/dpo_precompute.py [hydra overrides...]      # default: the tiny model and data on CPU

Trains the same DPO stage twice from the same base model (stage directories in a temporary home) and prints the
training tokens per second of each (chosen + rejected tokens x epochs over the whole stage's wall time, held-out
scoring included), their ratio, and the largest difference of the recorded training numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from hydra import compose, initialize_config_dir  # noqa: E402

import harness.config.schema  # noqa: E402,F401
from harness.models import base_model, load_tokenizer  # noqa: E402
from harness.pipeline import fit_training_data, load_training_data  # noqa: E402
from harness.train import dpo  # noqa: E402

CONF = Path(__file__).resolve().parent.parent / "conf"
COMPARED = ("train_loss", "heldout_after_loss", "heldout_after_rewards/margins")


def main() -> None:
    with tempfile.TemporaryDirectory() as home, initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.home={home}", "tracking=none", "algorithm=dpo", *sys.argv[1:]])
        base, _ = base_model(cfg.model, cfg.paths.stages)
        inputs = fit_training_data(cfg, load_training_data(cfg), base)
        tok = load_tokenizer(base, cfg.model.chat_template)
        text = lambda messages: tok.apply_chat_template(messages, tokenize=False)  # noqa: E731
        tokens = sum(len(tok(text(row[side]))["input_ids"]) for row in inputs.train
                     for side in ("chosen", "rejected")) * cfg.algorithm.epochs
        rates, results = {}, {}
        for name, precompute in (("plain", False), ("precompute", True)):
            cfg.algorithm.precompute_ref_log_probs = precompute
            start = time.perf_counter()
            results[name] = dpo.train(cfg.algorithm, base, cfg.model, inputs.train, inputs.heldout,
                                      Path(home) / name, "none", "benchmark", cfg.seed)
            rates[name] = tokens / (time.perf_counter() - start)
    for name, rate in rates.items():
        print(f"DPO {name:<11} {rate:10.0f} tokens/s")
    diff = max(abs(results["plain"][k] - results["precompute"][k]) for k in COMPARED)
    print(f"max |difference| of {', '.join(COMPARED)}: {diff:.2e}")
    print(f"ratio precompute / plain tokens/s: {rates['precompute'] / rates['plain']:.2f}  (target > 1)")


if __name__ == "__main__":
    main()
