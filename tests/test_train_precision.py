"""Mixed precision as the paper trained (EasyLM keeps fp32 params, llama_model.py param_dtype=float32): with
`model.dtype=bfloat16` trained weights and AdamW state stay fp32 and only the compute is bf16 (CPU autocast here), and
frozen models (reference, reward model scoring) are bf16. At the paper's learning rate pure-bf16 AdamW rounds most
updates away; mixed precision moves the weights as an fp32 run does."""

import pytest
import torch
from conftest import compose

from harness import data
from harness.train import ppo

PAPER_LR = "algorithm.learning_rate=1.0e-6"  # protocol, PPO (conf/algorithm/ppo.yaml)


def ppo_trainer(tmp_path, base, rm, dtype: str, *overrides):
    cfg = compose("algorithm=ppo", "reward_model=tiny", f"model.dtype={dtype}", *overrides)
    return ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, tmp_path, lambda m, s: None,
                          cfg.seed)


def policy_drift(trainer) -> tuple[torch.Tensor, torch.Tensor]:
    policy = trainer.accelerator.unwrap_model(trainer.model).policy
    before = torch.cat([p.detach().float().flatten().clone() for p in policy.parameters()])
    trainer.train()
    after = torch.cat([p.detach().float().flatten() for p in policy.parameters()])
    return (after - before).abs(), before


def test_ppo_in_bf16_keeps_fp32_weights_and_moves_them_as_fp32(tiny_base, tiny_reward_model, tmp_path):
    # 1 iteration = 1 optimiser step at 1e-6
    runs = {}
    for dtype in ("float32", "bfloat16"):
        trainer = ppo_trainer(tmp_path / dtype, tiny_base, tiny_reward_model, dtype, PAPER_LR, "algorithm.max_steps=1",
                              "algorithm.rollout_batch_size=16", "algorithm.warmup_ratio=0")
        model = trainer.accelerator.unwrap_model(trainer.model)
        assert {p.dtype for p in model.parameters()} == {torch.float32}, dtype
        frozen = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        assert {p.dtype for p in trainer.ref.parameters()} == {frozen}
        assert {p.dtype for p in trainer.scorer.model.parameters()} == {frozen}
        runs[dtype] = policy_drift(trainer)
        states = [s for s in trainer.optimizer.state.values() if "exp_avg" in s]
        assert states and all(s["exp_avg"].dtype == s["exp_avg_sq"].dtype == torch.float32 for s in states)
    fp32, _ = runs["float32"]
    bf16, weights = runs["bfloat16"]
    # Adam's first step moves every weight with a gradient by about lr; pure bf16 (spacing ~1e-4 at |w| ~ 0.02) would
    # leave nearly all of them where they were
    moved = lambda drift: float((drift > 0).float().mean())  # noqa: E731
    assert moved(fp32) > 0.9
    assert moved(bf16) == pytest.approx(moved(fp32), abs=0.05)
    assert float(bf16.mean()) == pytest.approx(float(fp32.mean()), rel=0.2)
    assert float(weights.abs().mean()) > 100 * float(fp32.mean())  # the regime where bf16 rounding would bite


def moved_share(trained_dir, base_dir) -> tuple[float, set]:
    from safetensors.torch import load_file

    trained, base = load_file(f"{trained_dir}/model.safetensors"), load_file(f"{base_dir}/model.safetensors")
    changed = torch.cat([(trained[k].float() != base[k].float()).flatten() for k in base])
    return float(changed.float().mean()), {t.dtype for t in trained.values()}


def test_dpo_in_bf16_trains_fp32_weights_at_the_papers_learning_rate(tiny_base, tmp_path):
    from harness.train import dpo

    # the paper's lr (5e-7, conf/algorithm/dpo.yaml), one step, no warmup
    cfg = compose("model.dtype=bfloat16", "algorithm.learning_rate=5.0e-7", "algorithm.max_steps=1",
                  "algorithm.warmup_ratio=0")
    pairs = data.load_preferences(cfg.dataset).select(range(16))
    dpo.train(cfg.algorithm, tiny_base, cfg.model, pairs, None, tmp_path, "none", "t", cfg.seed)
    share, dtypes = moved_share(tmp_path / "model", tiny_base.path)
    assert dtypes == {torch.float32}
    assert share > 0.9  # pure bf16 AdamW moves almost none of them at 5e-7


def test_frozen_reward_models_score_in_the_runs_dtype(tiny_reward_model):
    """Best-of-N and RewardBench score with the reward model in model.dtype (bf16 on GPUs: 26 GB at 13B, not 52)."""
    from harness.algorithms import best_of_n as bon
    from harness.eval import rewardbench

    alg = compose("algorithm=best_of_n", "reward_model=tiny").algorithm
    for dtype in ("bfloat16", "float32"):
        assert bon.wrapper(alg, tiny_reward_model, dtype)(None).scorer.model.dtype == torch.__dict__[dtype]
        assert rewardbench.load_scorer(tiny_reward_model, 4, dtype).model.dtype == torch.__dict__[dtype]
