"""PPO's arithmetic against values computed by hand (harness.train.ppo)."""

import math

import pytest
import torch

from harness.train.ppo import eos_trick, gae, masked_whiten, per_token_rewards, policy_loss, value_loss
from harness.train.rollout import pad_responses, through_eos

T = torch.tensor


def close(actual, expected, tol=1e-5):
    assert torch.allclose(actual.float(), T(expected).float(), atol=tol), f"{actual.tolist()} != {expected}"


def test_gae_and_returns_by_hand():
    rewards, values, mask = T([[1.0, 0.0, 2.0]]), T([[0.5, 1.0, 1.5]]), T([[1.0, 1.0, 1.0]])
    # gamma 1, lambda 0.5: delta = [1+1-0.5, 0+1.5-1, 2+0-1.5] = [1.5, 0.5, 0.5];
    # A2 = 0.5, A1 = 0.5 + 0.5*0.5 = 0.75, A0 = 1.5 + 0.5*0.75 = 1.875; returns = A + V
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    close(adv, [[1.875, 0.75, 0.5]])
    close(ret, [[2.375, 1.75, 2.0]])
    # lambda 1: advantages are rewards-to-go minus values, returns are the rewards-to-go
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(adv, [[2.5, 1.0, 0.5]])
    close(ret, [[3.0, 2.0, 2.0]])
    # gamma 0.5, lambda 1: A2 = 2 - 1.5; A1 = 0 + 0.5*1.5 - 1 + 0.5*0.5 = 0; A0 = 1 + 0.5 - 0.5 + 0.5*0 = 1
    adv, _ = gae(rewards, values, mask, gamma=0.5, lam=1.0)
    close(adv, [[1.0, 0.0, 0.5]])


def test_gae_ignores_padding_after_the_response():
    # The padded position's value (9.9) must not leak: the value after the last real token is 0.
    adv, ret = gae(T([[1.0, 2.0, 0.0]]), T([[0.5, 1.0, 9.9]]), T([[1.0, 1.0, 0.0]]), gamma=1.0, lam=0.95)
    # A1 = 2 + 0 - 1 = 1; A0 = (1 + 1 - 0.5) + 0.95 * 1 = 2.45
    close(adv, [[2.45, 1.0, 0.0]])
    close(ret, [[2.95, 2.0, 0.0]])


def test_advantage_whitening_by_hand():
    # mean 2.5, unbiased variance 5/3
    std = math.sqrt(5 / 3)
    close(masked_whiten(T([1.0, 2.0, 3.0, 4.0]), T([1.0, 1.0, 1.0, 1.0])), [(x - 2.5) / std for x in (1, 2, 3, 4)], 1e-4)
    # masked entry (100) ignored: mean 2, variance 1; shift_mean=False keeps the mean
    close(masked_whiten(T([1.0, 2.0, 3.0, 100.0]), T([1.0, 1.0, 1.0, 0.0])), [-1.0, 0.0, 1.0, 0.0], 1e-4)
    close(masked_whiten(T([1.0, 2.0, 3.0, 100.0]), T([1.0, 1.0, 1.0, 0.0]), shift_mean=False), [1.0, 2.0, 3.0, 0.0], 1e-4)


def test_eos_trick_replaces_the_score_of_unfinished_responses():
    scores, ended = T([1.5, 2.0, -3.0]), T([True, False, True])
    close(eos_trick(scores, ended, -10.0), [1.5, -10.0, -3.0])
    close(eos_trick(scores, ended, None), [1.5, 2.0, -3.0])


def test_per_token_kl_penalty_and_score_on_the_last_token():
    logprobs = T([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = T([[-1.5, -2.0, -2.0], [-1.0, -2.0, -7.0]])
    mask = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = per_token_rewards(T([5.0, 3.0]), logprobs, ref, mask, kl_coef=0.1)
    close(kl, [[0.5, 0.0, -1.0], [0.0, 1.0, 0.0]])
    # -0.1 * kl, plus the score on each row's last real token (index 2, then index 1)
    close(rewards, [[-0.05, 0.0, 5.1], [0.0, 2.9, 0.0]])


def test_eos_trick_then_assembly_puts_the_penalty_on_the_last_token():
    scores = eos_trick(T([4.0, 4.0]), T([True, False]), -10.0)
    rewards, _ = per_token_rewards(scores, torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2), kl_coef=0.05)
    close(rewards, [[0.0, 4.0], [0.0, -10.0]])


def test_clipped_policy_loss_by_hand():
    ratios, adv = T([1.5, 0.5, 0.5, 1.1]), T([1.0, 1.0, -1.0, -1.0])
    # per token max(-A r, -A clip(r, 0.8, 1.2)): [-1.2 (clipped), -0.5, 0.8 (clipped), 1.1]
    loss, clipfrac, approxkl = policy_loss(torch.log(ratios), torch.zeros(4), adv, torch.ones(4), clip=0.2)
    assert loss.item() == pytest.approx(0.05, abs=1e-6)
    assert clipfrac.item() == pytest.approx(0.5)
    assert approxkl.item() == pytest.approx(0.5 * sum(math.log(r) ** 2 for r in (1.5, 0.5, 0.5, 1.1)) / 4, abs=1e-6)
    # masked tokens do not count
    loss, clipfrac, _ = policy_loss(torch.log(ratios), torch.zeros(4), adv, T([1.0, 1.0, 0.0, 0.0]), clip=0.2)
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2, abs=1e-6)
    assert clipfrac.item() == pytest.approx(0.5)


def test_clipped_value_loss_by_hand():
    values, old, returns = T([0.5, 0.1, -0.3]), torch.zeros(3), T([1.0, 1.0, -1.0])
    # clipped values [0.2, 0.1, -0.2]; errors max((v-R)^2, (vc-R)^2) = [0.64 (clipped), 0.81, 0.64 (clipped)]
    loss, clipfrac = value_loss(values, old, returns, torch.ones(3), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81 + 0.64) / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_response_mask_ends_at_the_first_eos():
    eos, pad = 2, 0
    ids, mask, ended = pad_responses([through_eos(r, eos) for r in ([5, 7, eos, pad], [5, 6, 7, 8], [9])], pad, eos, "cpu")
    assert ids.tolist() == [[5, 7, eos, pad], [5, 6, 7, 8], [9, pad, pad, pad]]
    close(mask, [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert ended.tolist() == [True, False, False]
    # a tokenizer whose pad token is EOS (Llama / Tulu 2): generate pads finished rows with EOS
    ids, mask, ended = pad_responses([through_eos([5, eos, eos, eos], eos), [5, 6, 7]], eos, eos, "cpu")
    close(mask, [[1, 1, 0], [1, 1, 1]])
    assert ended.tolist() == [True, False]
