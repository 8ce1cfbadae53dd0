"""PPO's rewards and one update on rollouts built by hand, through the trainer's own methods (harness.train.ppo:
`PPOTrainer.advantages` wires the EOS trick, the KL penalty and GAE together; `update` takes the optimiser step), on a
tiny policy and reward model with random weights (tests/conftest.py::random_tiny). The paper's recipe throughout
(conf/algorithm/ppo.yaml: KL coefficient 0.05, -10 for a response without EOS, gamma 1, lambda 0.95)."""

from __future__ import annotations

import pytest
import torch

from conftest import compose
from harness import data
from harness.train import ppo

T = torch.tensor


@pytest.fixture(scope="module")
def trainer(random_tiny, tmp_path_factory):
    base, rm = random_tiny
    # one minibatch of 4 (one optimiser step per update), no warmup (a first step at lr 0 moves nothing)
    cfg = compose("algorithm=ppo", "reward_model=tiny", "algorithm.rollout_batch_size=4", "algorithm.effective_batch_size=4",
                  "algorithm.per_device_batch_size=4", "algorithm.max_steps=1", "algorithm.warmup_ratio=0")
    assert (cfg.algorithm.kl_coef, cfg.algorithm.missing_eos_penalty, cfg.algorithm.gamma, cfg.algorithm.lam) == \
        (0.05, -10.0, 1.0, 0.95)
    return ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm,
                          tmp_path_factory.mktemp("ppo"), lambda metrics, step: None, cfg.seed)


def three_token_rollout(trainer, rows: int = 2) -> ppo.Rollout:
    """`rows` prompts, each answered by 3 tokens: the first response ends with EOS on its third token, the others never
    end (cut at max_new_tokens), so they get the EOS trick's -10."""
    query, query_mask = trainer.left_pad([trainer.query_ids[i] for i in range(rows)])
    eos = trainer.tok.eos_token_id
    response = T([[40, 41, eos]] + [[40 + i, 42, 43] for i in range(1, rows)])
    return ppo.Rollout(query, query_mask, response, torch.ones(rows, 3, dtype=torch.long), T([True] + [False] * (rows - 1)))


def test_rewards_of_a_three_token_rollout_by_hand(trainer):
    b = three_token_rollout(trainer)
    b.logprobs = T([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    b.ref_logprobs = T([[-1.5, -2.0, -0.25], [-2.0, -1.0, -3.0]])
    b.values, b.entropy = torch.zeros(2, 3), torch.zeros(2, 3)
    b.rm_scores = T([2.0, 3.0])
    stats = trainer.advantages(b)
    # per-token KL (log pi - log pi_ref): [0.5, 0, -0.25] and [1, 0, 2]; rewards -0.05 x KL, plus on the last token the
    # score: 2 for the ended response, -10 (not its 3) for the unfinished one
    rewards = [[-0.025, 0.0, -0.05 * -0.25 + 2.0], [-0.05, 0.0, -0.05 * 2.0 - 10.0]]
    # GAE with zero values: A_t = r_t + 0.95 A_{t+1}; returns = A + V = A
    expected = []
    for r in rewards:
        a2 = r[2]
        a1 = r[1] + 0.95 * a2
        expected.append([r[0] + 0.95 * a1, a1, a2])
    assert torch.allclose(b.returns, T(expected), atol=1e-6), (b.returns, expected)
    assert expected[0] == pytest.approx([1.79128125, 1.911875, 2.0125]) and expected[1] == pytest.approx([-9.16525, -9.595, -10.1])
    # the advantages are the returns whitened (mean 0), in the same order
    assert abs(float(b.advantages.mean())) < 1e-5
    assert torch.equal(b.advantages.flatten().argsort(), b.returns.flatten().argsort())
    got = {k: float(v) for k, v in stats.items()}
    assert got["objective/rm_score"] == pytest.approx(2.5) and got["objective/score"] == pytest.approx(-4.0)
    assert got["objective/kl"] == pytest.approx((0.25 + 3.0) / 2)
    assert got["objective/non_score_reward"] == pytest.approx(-0.05 * 1.625)
    assert got["objective/rlhf_reward"] == pytest.approx(((2.0 - 0.05 * 0.25) + (-10.0 - 0.05 * 3.0)) / 2)
    assert (got["val/eos_fraction"], got["val/response_length"]) == (0.5, 3.0)


def test_one_update_moves_the_values_to_the_returns_and_the_policy_along_its_advantages(trainer):
    b = three_token_rollout(trainer, rows=4)
    b.rm_scores = T([2.0, 1.0, -1.0, 0.5])
    with trainer.compute():
        trainer.forward_rollout(b)
    trainer.advantages(b)
    mask = b.mask.float()
    returns, advantages, old_logprobs = b.returns.clone(), b.advantages.clone(), b.logprobs.clone()
    value_error = lambda values: float(ppo.masked_mean((values - returns) ** 2, mask))  # noqa: E731
    before = value_error(b.values)
    minibatches, backward = [], trainer.backward_minibatch
    trainer.backward_minibatch = lambda batch, rows, *a: (minibatches.append(rows.tolist()), backward(batch, rows, *a))[1]
    try:
        trainer.update(b, 0)
    finally:
        del trainer.backward_minibatch
    # one PPO epoch: every row once, in minibatches of effective_batch_size, one optimiser step each
    assert [sorted(m) for m in minibatches] == [[0, 1, 2, 3]] and trainer.global_step == 1
    logprobs, values, _, _ = trainer.forward_rows(b, torch.arange(4))
    # the value loss falls: the value model moved toward the returns (a flipped value-loss sign moves it away)
    assert value_error(values) < before, (before, value_error(values))
    # the surrogate rises: tokens with positive advantage became likelier, negative ones less likely
    assert float(ppo.masked_mean(advantages * (logprobs - old_logprobs), mask)) > 0


def test_a_minibatchs_gradient_is_that_of_its_one_loss_whatever_the_micro_batches(trainer):
    """backward_minibatch accumulates micro-batches (each divided by the minibatch's token count): the sum is the
    gradient of one loss, policy + vf_coef x value, a token mean over the whole minibatch, taken here in one pass."""
    b = three_token_rollout(trainer, rows=4)
    b.mask = T([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])  # lengths differ: per-row and per-token means differ
    b.rm_scores = T([2.0, 1.0, -1.0, 0.5])
    with trainer.compute():
        trainer.forward_rollout(b)
    trainer.advantages(b)
    rows, mask, q = torch.arange(4), b.mask.float(), b.query.shape[1]
    params = [p for p in trainer.model.parameters() if p.requires_grad]

    def gradient(micro_size=None) -> torch.Tensor:
        trainer.optimizer.zero_grad()
        if micro_size is None:  # the one loss, by hand
            with trainer.compute():
                logits, values = trainer.model(*b.inputs(rows))
            logprobs = torch.log_softmax(ppo.response_slice(logits, q).float(), -1).gather(-1, b.response[:, :, None])[..., 0]
            pg, _, _ = ppo.policy_loss(logprobs, b.logprobs, b.advantages, mask, trainer.alg.cliprange)
            vf, _ = ppo.value_loss(ppo.response_slice(values, q).float(), b.values, b.returns, mask, trainer.alg.cliprange_value)
            (pg + trainer.alg.vf_coef * vf).backward()
        else:
            trainer.backward_minibatch(b, rows, micro_size)
        grad = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
        trainer.optimizer.zero_grad()
        return grad

    whole = gradient()
    assert whole.abs().max() > 0
    for size in (1, 2, 4):
        assert torch.allclose(gradient(size), whole, rtol=1e-4, atol=1e-7), size


def test_the_minibatch_order_depends_on_the_seed_and_iteration_only(trainer):
    """A resumed run draws the same minibatches as an uninterrupted one: their order comes from (seed, iteration),
    not from the global random state."""
    b = three_token_rollout(trainer, rows=4)
    b.rm_scores = T([2.0, 1.0, -1.0, 0.5])
    with trainer.compute():
        trainer.forward_rollout(b)
    trainer.advantages(b)

    def order(iteration: int, global_seed: int) -> list[int]:
        seen, backward = [], trainer.backward_minibatch
        trainer.backward_minibatch = lambda batch, rows, *a: (seen.append(rows.tolist()), backward(batch, rows, *a))[1]
        torch.manual_seed(global_seed)
        try:
            trainer.update(b, iteration)
        finally:
            del trainer.backward_minibatch
        return seen[0]

    steps = trainer.global_step
    assert order(0, global_seed=1) == order(0, global_seed=2)
    assert order(1, global_seed=1) == order(1, global_seed=3)
    assert trainer.global_step == steps + 4  # one optimiser step per update (one minibatch each)
