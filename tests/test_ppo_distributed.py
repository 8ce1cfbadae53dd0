"""PPO data-parallel under torch.distributed (2 CPU processes, gloo): the recipe's batch is split across processes,
the replicas stay identical, and a minibatch's gradient is the one a single process computes."""

import json
from pathlib import Path

from direction import max_weight_change

from conftest import compose, torchrun_two



def one_process_gradient(base, rm, out: Path) -> list:
    """A scored rollout (saved for the workers) and its first 16 rows' minibatch gradient in this one process."""
    from dataclasses import asdict

    import torch
    from conftest import compose

    from harness import data
    from harness.train import ppo

    cfg = compose("algorithm=ppo", "reward_model=tiny", "algorithm.max_steps=1")
    trainer = ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out / "one",
                             lambda m, s: None, cfg.seed)
    with trainer.compute():
        batch = trainer.rollout(trainer.batch_indices(0))
    trainer.advantages(batch)
    batch = ppo.Rollout(**{k: v[:16] for k, v in asdict(batch).items()})
    torch.save(asdict(batch), out / "rollout.pt")
    minibatch = batch.select(torch.arange(16))
    trainer.advantages(minibatch)  # whitened over the 16 rows in one process
    torch.save(minibatch.advantages, out / "advantages_1_process.pt")
    trainer.backward_minibatch(batch, torch.arange(16))
    return [p.grad.clone() for p in trainer.model.parameters()]


def test_two_processes_share_the_batch_and_stay_in_sync(tiny_base, tiny_reward_model, tmp_path):
    import torch

    expected = one_process_gradient(tiny_base, tiny_reward_model, tmp_path)
    torchrun_two("ppo_ddp_worker.py", tiny_base.path, tiny_reward_model.ref.path, str(tmp_path), "algorithm.max_steps=2",
                 env={"PPO_GRADIENT_CHECK": str(tmp_path)})
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
    # the minibatch loss is one token mean over both processes' rows: the same gradient as in one process
    # (EasyLM's objective; per-process token means weighted by sequence count would differ)
    got = torch.load(tmp_path / "gradient_2_processes.pt")
    # (to float round-off: gloo sums in its own order; relative to each tensor's largest entry)
    worst = max(float((g - e).abs().max() / e.abs().max().clamp(min=1e-12)) for g, e in zip(got, expected))
    assert worst < 1e-5, worst
    # advantages are whitened over the whole minibatch, both processes' rows (EasyLM's whiten over its minibatch):
    # the one-process whitening of all 16 rows, mean 0 over them and not over either half alone
    halves = [torch.load(tmp_path / f"advantages_rank{r}.pt") for r in (0, 1)]
    torch.testing.assert_close(torch.cat(halves), torch.load(tmp_path / "advantages_1_process.pt"), atol=1e-5, rtol=1e-5)
    mask = torch.load(tmp_path / "rollout.pt")["mask"].float()
    assert abs(float((torch.cat(halves) * mask).sum() / mask.sum())) < 1e-4
    assert abs(float((halves[0] * mask[:8]).sum() / mask[:8].sum())) > 1e-3
    # each process samples with its own seed, derived from the run's (the first process keeps it)
    assert [r["seed"] for r in ranks] == [compose("algorithm=ppo").seed + r for r in (0, 1)]
