"""EasyLM's PPO arithmetic where it differs from textbook implementations (hamishivi/EasyLM@dbf2212
EasyLM/models/llama/llama_train_ppo.py): the whitening's epsilon and variance. The whitening over every process's rows
and the per-process seeds run in tests/test_ppo_distributed.py (2 processes)."""

import math

import torch

from harness.train.ppo import masked_whiten


def test_whitening_is_easylms_with_epsilon_1e6():
    """whiten: (x - masked_mean) / sqrt(masked_var + 1e-6), masked_var with Bessel's correction. For x = (0, 1e-3)
    the variance (5e-7) is comparable to the epsilon: 1e-8 would give +-0.70, EasyLM's 1e-6 gives +-0.41."""
    x, mask = torch.tensor([[0.0, 1e-3, 7.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    var = ((0 - 5e-4) ** 2 + (1e-3 - 5e-4) ** 2) / (2 - 1)
    want = 5e-4 / math.sqrt(var + 1e-6)
    got = masked_whiten(x, mask)
    torch.testing.assert_close(got, torch.tensor([[-want, want, 0.0]]), atol=1e-6, rtol=1e-5)
    assert abs(want - 0.408) < 1e-3


def test_paper_queries_have_no_bos_and_tiny_ones_do(tiny_base):
    """EasyLM's PPO prompts carry no <s> (the paper's default); the tiny scale keeps it (conf/algorithm_model)."""
    from datasets import Dataset

    from conftest import compose
    from harness.models import load_tokenizer
    from harness.train.ppo import keep_short_prompts

    assert compose("algorithm=ppo", "model=tulu2_13b", "reward_model=uf_13b").algorithm.query_bos is False
    tiny = compose("algorithm=ppo", "reward_model=tiny").algorithm
    tok = load_tokenizer(tiny_base, "tulu")
    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": " What is 3 + 4?\n"}]}])
    (with_bos,), (without,) = (keep_short_prompts(rows, tok, 100, bos)[1] for bos in (tiny.query_bos, False))
    assert with_bos == [tok.bos_token_id] + without and tok.bos_token_id not in without
    assert tok.decode(without) == "<|user|>\nWhat is 3 + 4?\n<|assistant|>\n"  # every message stripped
