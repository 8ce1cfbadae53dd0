"""DPO through TRL's DPOTrainer with the paper's recipe (conf/algorithm/dpo.yaml).

Held-out preference pairs, when the dataset has them, are scored before and after training: the implicit reward
margin (beta x log-ratio of chosen minus rejected) should grow if DPO moved the policy the right way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from harness.models import TRAINABLE_DTYPE, ModelRef, load_causal_lm, load_tokenizer, torch_dtype
from harness.records.stages import latest_checkpoint, write_atomic
from harness.train.common import (CURVE_DIR, CountSteps, SaveEvery, batch_record, save_trained, trl_config,
                                  whole_run_loss)
from harness.train.dpo_data import LastMessageCollator, LastMessageDPOTrainer


def heldout_metrics(trainer: DPOTrainer, prefix: str) -> dict:
    """Loss, implicit reward margin and accuracy on the trainer's held-out pairs (given at init, so that with
    precomputed reference log-probs they are computed before training too); TRL logs the reward stats as
    eval_rewards/..."""
    out = {f"{prefix}_loss": trainer.evaluate(metric_key_prefix=prefix)[f"{prefix}_loss"]}
    logged = next(e for e in reversed(trainer.state.log_history) if "eval_rewards/margins" in e)
    return out | {f"{prefix}_{k}": logged[f"eval_{k}"] for k in ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")}


def precompute_reference(alg) -> bool:
    """Reference log-probs computed once (TRL's precompute_ref_log_probs) in a single process only: under several
    processes TRL's precompute lost its cache file (2 gloo processes on CPU, TRL 1.16), so they run the reference per
    step, as the plain path does."""
    return bool(alg.precompute_ref_log_probs) and int(os.environ.get("WORLD_SIZE", "1")) == 1


def build(alg, base: ModelRef, model_cfg, train_ds: Dataset, eval_ds: Dataset | None, out_dir: Path, report_to: str,
          run_name: str, seed: int) -> tuple[DPOTrainer, object]:
    """The DPOTrainer and tokenizer: models are loaded after DPOConfig has set this process's device."""
    tok = load_tokenizer(base, model_cfg.chat_template)
    args = trl_config(
        DPOConfig, alg, out_dir, model_cfg.dtype, report_to, run_name, seed,
        beta=alg.beta,
        loss_type=[alg.loss_type],
        max_length=alg.max_length,
        precompute_ref_log_probs=precompute_reference(alg),
        # TRL loads the trained policy (fp32: mixed precision) on each process's device, at the pinned revision
        model_init_kwargs={"dtype": torch_dtype(TRAINABLE_DTYPE), "revision": base.revision},
    )
    # The frozen SFT reference in model.dtype, at the pinned revision, on this process's device (set by DPOConfig).
    ref = None if precompute_reference(alg) else load_causal_lm(base, model_cfg.dtype, on=args.device).eval()
    # Each side its own conversation through its final EOS, loss on its last assistant message (harness.train.dpo_data)
    trainer = LastMessageDPOTrainer(model=base.path, ref_model=ref, args=args, train_dataset=train_ds,
                                    eval_dataset=eval_ds, processing_class=tok,
                                    data_collator=LastMessageCollator(tok.pad_token_id, alg.max_length),
                                    callbacks=[CountSteps()] + ([SaveEvery(alg.eval_every, out_dir / CURVE_DIR)]
                                                                if alg.get("eval_every") else []))
    return trainer, tok


def train(alg, base: ModelRef, model_cfg, train_ds: Dataset, eval_ds: Dataset | None, out_dir: Path,
          report_to: str, run_name: str, seed: int) -> dict:
    trainer, tok = build(alg, base, model_cfg, train_ds, eval_ds, out_dir, report_to, run_name, seed)
    resume = latest_checkpoint(out_dir / "checkpoints")
    metrics = {}
    if eval_ds is not None:  # scored once, before any step, and kept across a resume
        before = out_dir / "heldout_before.json"
        if before.exists():
            metrics |= json.loads(before.read_text())
        else:  # every process evaluates (a collective call); the first writes
            metrics |= heldout_metrics(trainer, "heldout_before")
            if trainer.is_world_process_zero():
                write_atomic(before, json.dumps(metrics))
    result = trainer.train(resume_from_checkpoint=resume)
    if eval_ds is not None:
        metrics |= heldout_metrics(trainer, "heldout_after")
    save_trained(trainer, tok, out_dir)
    return {
        **metrics,
        "train_loss": whole_run_loss(trainer, result, resume),
        "global_step": trainer.state.global_step,
        "resumed_from": resume,
        "train_rows": len(train_ds),
        **batch_record(alg),
    }
