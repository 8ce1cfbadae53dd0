"""PPO as the paper's code computes it (hamishivi/EasyLM@dbf2212 EasyLM/models/llama/llama_train_ppo.py): the minibatch
loss is a mean over all of its response tokens (masked means over the whole 64-sequence minibatch), whatever the
micro-batching; sampling is exactly the recipe's; log-probs come from the raw logits; old log-probs, values and
advantages are recomputed per minibatch; policy and value gradients are clipped separately. The textbook variants
are options."""

import pytest
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
    worst = float((one - eight).abs().max() / eight.abs().max())  # float round-off only (summation order)
    assert worst < 1e-5, worst
    for key in stats_one:
        assert torch.allclose(stats_one[key], stats_eight[key], atol=1e-5), key
    # before any step the ratio is 1, so the policy loss is minus the token mean of the (whitened) advantages
    mask = batch.mask[rows].float()
    expected = -(batch.advantages[rows] * mask).sum() / mask.sum()
    assert torch.allclose(stats_one["loss/policy"], expected, atol=1e-5)


def test_sampling_is_exactly_the_recipes_whatever_the_checkpoint_says(tiny_base, tiny_reward_model, tmp_path):
    import json
    import shutil

    from harness.models import ModelRef

    # a checkpoint whose generation_config.json asks for processors the log-probs would ignore
    shutil.copytree(tiny_base.path, tmp_path / "base")
    rogue = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "min_p": 0.2, "typical_p": 0.9, "top_k": 5,
             "top_p": 0.8, "temperature": 1.5, "suppress_tokens": [7, 8], "bad_words_ids": [[9]], "min_new_tokens": 4}
    (tmp_path / "base" / "generation_config.json").write_text(json.dumps(rogue))
    trainer = ppo_trainer(tmp_path / "out", ModelRef(str(tmp_path / "base")), tiny_reward_model, "algorithm.max_steps=1")
    alg = trainer.alg
    assert (alg.temperature, alg.top_k, alg.top_p) == (0.7, 50, 1.0)  # the paper's sampler (harness/config/schema.py)
    policy = trainer.accelerator.unwrap_model(trainer.model).policy.eval()
    query, query_mask = trainer.left_pad([trainer.query_ids[i] for i in range(4)])
    out = policy.generate(input_ids=query, attention_mask=query_mask, generation_config=trainer.generation,
                          output_scores=True, output_logits=True, return_dict_in_generate=True)
    for raw, processed in zip(out.logits, out.scores):  # every step: temperature, then top-k 50, nothing else
        expected = raw / alg.temperature
        kth = expected.topk(alg.top_k, dim=-1).values[:, -1:]
        expected = expected.masked_fill(expected < kth, float("-inf"))
        assert torch.equal(processed, expected)
    # the saved policy keeps the checkpoint's own generation config
    trainer.train()
    assert json.loads((tmp_path / "out" / "model" / "generation_config.json").read_text())["repetition_penalty"] == 1.3


def test_the_papers_ppo_is_the_default():
    alg = compose("algorithm=ppo", "model=tulu2_13b").algorithm
    assert not alg.logprobs_at_temperature and alg.recompute_per_minibatch and alg.separate_grad_clipping
    assert (alg.temperature, alg.top_k, alg.top_p, alg.max_grad_norm) == (0.7, 50, 1.0, 1.0)


def test_log_probs_come_from_the_raw_logits_unless_asked(tiny_base, tiny_reward_model, tmp_path):
    trainer = ppo_trainer(tmp_path, tiny_base, tiny_reward_model, "algorithm.max_steps=1")
    batch = scored_rollout(trainer)
    rows = torch.arange(4)
    ids, attn, pos = batch.inputs(rows)
    policy = trainer.accelerator.unwrap_model(trainer.model).policy
    with torch.no_grad():
        logits = ppo.response_slice(policy(input_ids=ids, attention_mask=attn, position_ids=pos).logits, batch.query.shape[1])
    mask = batch.mask[rows].bool()
    for tempered, scale in ((False, 1.0), (True, trainer.alg.temperature)):
        trainer.alg.logprobs_at_temperature = tempered
        lp, _, _, ref_lp = trainer.forward_rows(batch, rows, reference=True)
        expected = torch.log_softmax(logits / scale, -1).gather(-1, batch.response[rows, :, None]).squeeze(-1)
        assert torch.allclose(lp[mask], expected[mask], atol=1e-5)
        assert torch.allclose(ref_lp[mask], expected[mask], atol=1e-5)  # no step yet: the reference is the policy


def test_minibatch_recomputation_starts_every_step_at_ratio_one(tiny_base, tiny_reward_model, tmp_path):
    stats = {}
    for recompute in (True, False):
        trainer = ppo_trainer(tmp_path / str(recompute), tiny_base, tiny_reward_model, "algorithm.max_steps=1",
                              "algorithm.ppo_epochs=2", f"algorithm.recompute_per_minibatch={recompute}")
        batch = scored_rollout(trainer)
        if recompute:  # a minibatch's advantages are whitened over its own rows
            rows = torch.arange(3, 19)
            trainer.refresh(batch, rows)
            adv, mask = batch.advantages[rows], batch.mask[rows].float()
            mean = (adv * mask).sum() / mask.sum()
            var = ((adv - mean) ** 2 * mask).sum() / (mask.sum() - 1)
            assert abs(float(mean)) < 1e-5 and abs(float(var) - 1) < 1e-3
        stats[recompute] = trainer.update(batch, 0)  # 2 epochs x 2 minibatches at the tiny lr: the policy moves
    assert stats[True]["policy/approxkl"] < 1e-10 and stats[True]["policy/clipfrac"] == 0
    assert stats[False]["policy/approxkl"] > 1e-6


def test_policy_and_value_gradients_are_clipped_separately(tiny_base, tiny_reward_model, tmp_path):
    trainer = ppo_trainer(tmp_path, tiny_base, tiny_reward_model, "algorithm.max_steps=1")
    batch = scored_rollout(trainer)
    model = trainer.accelerator.unwrap_model(trainer.model)
    norm = lambda module: float(torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None]).norm())  # noqa: E731
    for separate in (True, False):
        trainer.optimizer.zero_grad()
        trainer.backward_minibatch(batch, torch.arange(16))
        small, large = sorted([(norm(model.policy), "policy"), (norm(model.value), "value")])
        limit = (small[0] + large[0]) / 2  # between the two: separately, only the larger one is clipped
        trainer.alg.max_grad_norm, trainer.alg.separate_grad_clipping = limit, separate
        reported = trainer.clip_gradients()  # the norms before clipping, logged per iteration
        small_after, large_after = norm(getattr(model, small[1])), norm(getattr(model, large[1]))
        before = {name: n for n, name in (small, large)}
        if separate:
            assert small_after == small[0] and abs(large_after - limit) < 1e-4 * limit
            assert reported.keys() == {"policy/grad_norm", "val/grad_norm"}
            assert float(reported["policy/grad_norm"]) == pytest.approx(before["policy"], rel=1e-4)
            assert float(reported["val/grad_norm"]) == pytest.approx(before["value"], rel=1e-4)
        else:  # one joint norm shrinks both
            assert small_after < small[0] and abs((small_after**2 + large_after**2) ** 0.5 - limit) < 1e-4 * limit
            assert float(reported["grad_norm"]) == pytest.approx((small[0] ** 2 + large[0] ** 2) ** 0.5, rel=1e-4)
