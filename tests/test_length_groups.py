"""Length-grouped training micro-batches (harness/train/length_groups.py): rows sorted by response length before
micro-batches are cut, each micro-batch cut to the columns it fills. The loss normalisation is unchanged, so PPO's
minibatch gradient (one token mean over the minibatch) and a GRPO step (TRL's dapo loss) are those of the ungrouped
micro-batches but for rounding, while the micro-batches compute fewer padded tokens."""

import pytest
import torch
from conftest import compose

from harness import data
from harness.train import grpo, length_groups, ppo


def padded_tokens(calls: list) -> int:
    return sum(rows * width for rows, width in calls)


@pytest.mark.slow
def test_ppo_grouped_micro_batches_give_the_ungrouped_minibatch_gradient(tiny_base, tiny_reward_model, tmp_path,
                                                                          monkeypatch):
    cfg = compose("algorithm=ppo", "reward_model=tiny", "algorithm.max_steps=1")
    trainer = ppo.PPOTrainer(cfg.algorithm, tiny_base, cfg.model, data.load_prompts(cfg.prompts), tiny_reward_model,
                             tmp_path, lambda m, s: None, cfg.seed)
    with trainer.compute():
        batch = trainer.rollout(trainer.batch_indices(0))
    trainer.advantages(batch)
    rows = torch.arange(trainer.local_minibatch)
    assert len(set(batch.mask[rows].sum(1).tolist())) > 4  # responses of many lengths

    def minibatch_gradient(micro):
        """The gradient of the minibatch's loss in micro-batches of 4 cut by `micro`, and (rows, width) of each."""
        calls = []

        def recording(self, r):
            part = micro(self, r)
            calls.append((len(r), part.query.shape[1] + part.response.shape[1]))
            return part

        monkeypatch.setattr(ppo.Rollout, "micro", recording)
        trainer.optimizer.zero_grad()
        stats = trainer.backward_minibatch(batch, rows, 4)
        grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
        trainer.optimizer.zero_grad()
        return grad, stats, calls

    grouped, grouped_stats, grouped_calls = minibatch_gradient(ppo.Rollout.micro)
    # the micro-batches as they were: in the minibatch's order, each as wide as the whole rollout
    monkeypatch.setattr(length_groups, "longest_first", lambda lengths: torch.arange(len(lengths)))
    plain, plain_stats, plain_calls = minibatch_gradient(ppo.Rollout.select)
    worst = float((grouped - plain).abs().max() / plain.abs().max())
    assert worst < 1e-5, worst  # the same minibatch loss: rounding only
    for key in plain_stats:
        assert torch.allclose(grouped_stats[key], plain_stats[key], atol=1e-5), key
    assert len(grouped_calls) == len(plain_calls) == 4
    assert padded_tokens(grouped_calls) < 0.8 * padded_tokens(plain_calls), (grouped_calls, plain_calls)


def test_regroup_sorts_every_row_into_trimmed_micro_batches():
    completion_mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    prompt_mask = torch.tensor([[0, 1], [1, 1], [0, 1], [0, 1]])
    rows = torch.arange(4)
    batch = {"prompt_ids": prompt_mask * 7, "prompt_mask": prompt_mask, "completion_ids": completion_mask * (rows[:, None] + 1),
             "completion_mask": completion_mask, "advantages": rows.float(), "num_items_in_batch": torch.tensor(10.0),
             "old_per_token_logps": completion_mask * -1.0}
    chunks = [{k: v[:2] if v.dim() else v for k, v in batch.items()}, {k: v[2:] if v.dim() else v for k, v in batch.items()}]
    first, second = length_groups.regroup(chunks, "completion_mask", ("prompt_ids", "prompt_mask"))
    assert first["advantages"].tolist() == [1.0, 3.0] and second["advantages"].tolist() == [2.0, 0.0]  # longest first
    assert first["completion_ids"].tolist() == [[2, 2, 2, 2], [4, 4, 4, 0]]
    assert second["completion_ids"].tolist() == [[3, 3], [1, 0]]  # cut after its longest completion
    assert second["old_per_token_logps"].shape == (2, 2) and second["prompt_mask"].tolist() == [[1], [1]]
    assert first["prompt_mask"].tolist() == [[1, 1], [0, 1]]  # left padding kept where a row needs it
    assert first["num_items_in_batch"] == second["num_items_in_batch"] == 10.0  # the step's token count, untouched


@pytest.mark.slow
def test_grpo_grouped_steps_equal_trls_order(tiny_base, tiny_reward_model, tmp_path, monkeypatch):
    cfg = compose("algorithm=grpo", "reward_model=tiny", "algorithm.max_steps=2", "algorithm.per_device_batch_size=8")
    assert cfg.algorithm.loss_type in length_groups.GROUPABLE_LOSSES
    prompts = data.load_prompts(cfg.prompts)
    regrouped = []
    original = length_groups.regroup
    monkeypatch.setattr(length_groups, "regroup", lambda *a: regrouped.append(original(*a)) or regrouped[-1])

    def weights(name):
        """The policy's weights before and after 2 steps."""
        trainer, _, _ = grpo.build(cfg.algorithm, tiny_base, cfg.model, prompts, tiny_reward_model, tmp_path / name,
                                   "none", "test", cfg.seed, cfg.prompts.max_prompt_tokens)
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        trainer.train()
        return before, {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    before, grouped = weights("grouped")
    assert len(regrouped) == 2 and all(len(step) == 4 for step in regrouped)  # 2 steps of 4 micro-batches of 8
    widths = [[chunk["completion_mask"].shape[1] for chunk in step] for step in regrouped]
    assert all(w == sorted(w, reverse=True) and w[-1] < w[0] for w in widths), widths  # short micro-batches cut short
    monkeypatch.setattr(grpo.LengthGroupedGRPOTrainer, "_prepare_inputs", grpo.GRPOTrainer._prepare_inputs)
    _, plain = weights("plain")
    assert max(float((plain[n] - before[n]).abs().max()) for n in plain) > 1e-3  # the steps moved the policy
    for name in plain:  # rounding only: Adam turns a gradient's rounding into at most a sliver of a 1e-3 step
        torch.testing.assert_close(grouped[name], plain[name], rtol=1e-4, atol=1e-5)
