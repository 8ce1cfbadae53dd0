"""What every TRL trainer of the harness shares: arguments from the recipe, step counting, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from transformers import TrainerCallback

from harness import console
from harness.train.batching import plan
from harness.models import device
from harness.train.sharding import accelerate_fsdp_overrides

# Optimiser steps performed by this process (not restored from a checkpoint): a reused stage adds none.
STEPS_THIS_PROCESS = {"count": 0}
# Where a policy stage being trained keeps the models saved for its learning curve (algorithm.eval_every):
# <stage>/curve/step-<N>/, moved into checkpoint stages when training ends (harness.pipeline).
CURVE_DIR = "curve"


class CountSteps(TrainerCallback):
    """Counts optimizer steps (a run's record) and moves the console's progress bar (harness.console)."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            console.progress("training", state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        STEPS_THIS_PROCESS["count"] += 1
        if state.is_world_process_zero:
            console.advance()


class SaveEvery(TrainerCallback):
    """Saves the model (weights and tokenizer) every `every` optimiser steps before the last, under `directory`/step-N:
    the checkpoints of a learning curve. Saving reads the weights only: training goes on unchanged."""

    def __init__(self, every: int, directory: Path):
        self.every, self.directory = every, Path(directory)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        step = state.global_step
        if step % self.every or step >= state.max_steps or not state.is_world_process_zero:
            return
        target = self.directory / f"step-{step}"
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        if processing_class is not None:
            processing_class.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)


def whole_run_loss(trainer, result, resume: str | None) -> float:
    """The mean training loss over every step of the run, also after a resume: the Trainer's `training_loss` covers only
    the steps this process made, so the steps before the checkpoint come from the logged losses it restored (each the
    mean since the previous log; a gap between the last log and the checkpoint, when save_steps is not a multiple of
    logging_steps, is left out)."""
    if resume is None:
        return result.training_loss
    resumed_at = int(Path(resume).name.split("-")[-1])
    total = prev = 0
    for entry in trainer.state.log_history:
        if "loss" in entry and entry["step"] <= resumed_at:
            total, prev = total + entry["loss"] * (entry["step"] - prev), entry["step"]
    after = trainer.state.global_step - resumed_at
    return (total + result.training_loss * after) / max(prev + after, 1)


def trainer_kwargs(alg, out_dir: Path, dtype: str, report_to: str, run_name: str, seed: int) -> dict:
    """TrainingArguments shared by TRL configs, from an OptimConfig-shaped recipe."""
    batch = plan(alg.effective_batch_size, alg.per_device_batch_size)
    on_gpu = device() == "cuda"
    return dict(
        output_dir=str(out_dir / "checkpoints"),
        run_name=run_name,
        per_device_train_batch_size=batch.per_device,
        per_device_eval_batch_size=batch.per_device,
        gradient_accumulation_steps=batch.accumulation,
        num_train_epochs=alg.epochs,
        max_steps=alg.max_steps,
        learning_rate=alg.learning_rate,
        lr_scheduler_type=alg.lr_scheduler,
        warmup_steps=alg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        adam_beta1=alg.adam_beta1,
        adam_beta2=alg.adam_beta2,
        weight_decay=alg.weight_decay,
        max_grad_norm=alg.max_grad_norm,
        # Mixed precision: fp32 weights and AdamW state (models load in TRAINABLE_DTYPE), model.dtype compute under
        # autocast, on CPU too (torch has bf16 autocast there).
        bf16=dtype == "bfloat16",
        fp16=on_gpu and dtype == "float16",
        use_cpu=not on_gpu,
        activation_checkpointing=alg.activation_checkpointing,
        gradient_checkpointing=False,
        logging_steps=alg.logging_steps,
        save_strategy="steps",
        save_steps=alg.save_steps,
        save_total_limit=2,
        report_to=report_to,
        seed=seed,
        disable_tqdm=False,
    )


def trl_config(cls, alg, out_dir: Path, dtype: str, report_to: str, run_name: str, seed: int, **fields):
    """A TRL config (DPOConfig, RewardConfig, GRPOConfig) from the recipe and the trainer's own `fields`; in a process
    that `accelerate launch` started with FSDP (launch.sharding=fsdp*), with fp32 gradient reduction and a reduce-scatter
    every micro-batch (harness.train.sharding.accelerate_fsdp_overrides)."""
    fsdp = accelerate_fsdp_overrides()
    if fsdp:
        fields["accelerator_config"] = {"gradient_accumulation_kwargs": fsdp["gradient_accumulation_kwargs"]}
    args = cls(**trainer_kwargs(alg, out_dir, dtype, report_to, run_name, seed), **fields)
    if fsdp:  # the Trainer builds its FSDP plugin from this; TrainingArguments derives it from its own `fsdp` fields,
        # which an accelerate-launched job leaves empty (its settings are in the environment)
        args.fsdp_plugin_args = fsdp["fsdp_plugin_args"]
    return args


def batch_record(alg) -> dict:
    b = plan(alg.effective_batch_size, alg.per_device_batch_size)
    return {"effective_batch_size": b.effective, "per_device_batch_size": b.per_device,
            "gradient_accumulation_steps": b.accumulation, "processes": b.processes}


def save_trained(trainer, tok, out_dir: Path) -> None:
    """The final model, its tokenizer and the training log in `out_dir`; then the resume checkpoints (optimizer
    states: ~12 bytes/parameter) are dead weight. Every process calls it (saving may gather shards); the first writes."""
    trainer.save_model(str(out_dir / "model"))
    if trainer.is_world_process_zero():
        tok.save_pretrained(out_dir / "model")
        (out_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
