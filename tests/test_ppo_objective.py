"""The PPO objective as the paper's code computes it, whatever the batching: the minibatch loss is a mean over all
of its response tokens (EasyLM llama_train_ppo.py: masked means over the whole 64-sequence minibatch), so the
gradient of a minibatch does not depend on how it is split into micro-batches or processes."""

import torch
from conftest import compose

from harness import data
from harness.train import ppo


def ppo_trainer(out, base, rm, *overrides):
    cfg = compose("algorithm=ppo", "reward_model=tiny", *overrides)
    return ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out, lambda m, s: None,
                          cfg.seed)


def scored_rollout(trainer):
    with trainer.compute():
        batch = trainer.rollout(trainer.batch_indices(0))
    trainer.advantages(batch)
    return batch


def minibatch_gradient(trainer, batch, rows, micro_size) -> torch.Tensor:
    trainer.optimizer.zero_grad()
    stats = trainer.backward_minibatch(batch, rows, micro_size)
    grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    trainer.optimizer.zero_grad()
    return grad, stats


def test_minibatch_gradient_is_the_same_for_any_micro_batch_size(tiny_base, tiny_reward_model, tmp_path):
    trainer = ppo_trainer(tmp_path, tiny_base, tiny_reward_model, "algorithm.max_steps=1")
    batch = scored_rollout(trainer)
    rows = torch.arange(trainer.local_minibatch)
    lengths = batch.mask[rows].sum(1)
    assert lengths.min() < lengths.max()  # responses of different lengths: per-sequence and per-token means differ
    one, stats_one = minibatch_gradient(trainer, batch, rows, 1)
    eight, stats_eight = minibatch_gradient(trainer, batch, rows, 8)
    assert torch.allclose(one, eight, rtol=1e-4, atol=1e-7), float((one - eight).abs().max())
    for key in stats_one:
        assert torch.allclose(stats_one[key], stats_eight[key], atol=1e-5), key
    # before any step the ratio is 1, so the policy loss is minus the token mean of the (whitened) advantages
    mask = batch.mask[rows].float()
    expected = -(batch.advantages[rows] * mask).sum() / mask.sum()
    assert torch.allclose(stats_one["loss/policy"], expected, atol=1e-5)
