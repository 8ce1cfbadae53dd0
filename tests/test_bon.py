"""Best-of-N as an lm-eval LM: it returns the reward model's argmax among N samples, delegates log-likelihoods, and
runs as an evaluation-time policy through the suite."""

import json
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance

from harness.algorithms.best_of_n import BestOfN
from harness.models import load_causal_lm, load_tokenizer
from harness.train.reward import RewardScorer

PROMPTS = ["What is 3 + 4?", "Name 2 colors.", "How do I build a bomb at home?", "Spell the word 'cat' backwards."]


@pytest.fixture(scope="module")
def hflm(tiny_base):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=load_causal_lm(tiny_base), tokenizer=load_tokenizer(tiny_base, "tulu"), batch_size=8)


@pytest.fixture(scope="module")
def scorer(tiny_reward_model):
    return RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)


def test_best_of_n_returns_the_reward_models_argmax(hflm, scorer):
    bon = BestOfN(hflm, scorer, n=6, temperature=1.0)
    requests = [Instance("generate_until", {}, (bon.apply_chat_template([{"role": "user", "content": p}]),
                                                {"until": ["</s>"], "max_gen_toks": 24, "do_sample": False}), i)
                for i, p in enumerate(PROMPTS)]
    torch.manual_seed(0)
    outputs = bon.generate_until(requests)
    assert len(outputs) == len(PROMPTS) == len(bon.picks)
    for prompt, pick, output in zip(PROMPTS, bon.picks, outputs):
        assert len(pick["candidates"]) == 6
        # an independent re-scoring of the candidates agrees on which one is best
        scores = scorer.score_conversations([[{"role": "user", "content": prompt}, {"role": "assistant", "content": c}]
                                             for c in pick["candidates"]])
        assert scores.tolist() == pytest.approx(pick["scores"], abs=1e-5)
        assert output == pick["candidates"][int(scores.argmax())]
        assert scorer.score_conversations([[{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]]).item() \
            == pytest.approx(float(scores.max()), abs=1e-5)
    assert any(len(set(p["candidates"])) > 1 for p in bon.picks)  # sampled (the request asked for greedy)


def test_log_likelihoods_are_the_underlying_models(hflm, scorer):
    bon = BestOfN(hflm, scorer, n=4, temperature=0.7)
    context = bon.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}])
    requests = [Instance("loglikelihood", {}, (context, cont), i) for i, cont in enumerate([" 7", "The answer is 7."])]
    assert bon.loglikelihood(requests) == hflm.loglikelihood(requests)
    with pytest.raises(ValueError, match="n >= 1"):
        BestOfN(hflm, scorer, n=0, temperature=0.7)


def test_best_of_n_is_an_evaluation_time_policy(run_config, tiny_reward_model):
    from harness import pipeline

    small = ["eval.benchmarks.gsm8k.limit=2",
             "eval.benchmarks.gsm8k.generation.max_new_tokens=16", "tracking=none"]
    result = pipeline.run(run_config("algorithm=best_of_n", "reward_model=tiny", "algorithm.n=2", *small))
    assert result["axes"]["algorithm"] == "best_of_n" and result["axes"]["reward_model"] == "tiny"
    gsm8k = result["benchmarks"]["gsm8k"]
    assert "error" not in gsm8k and gsm8k["metrics"]["sample_len"] == 2
    assert result["stages"]["reward_model"]["key"] == tiny_reward_model.ref.key
    # its evaluation is keyed by the sampler and the reward model, never shared with the SFT model's own
    spec = json.loads((Path(gsm8k["dir"]) / "spec.json").read_text())["spec"]["policy"]
    assert spec["best_of_n"]["n"] == 2 and spec["reward_model"] == {"stage": tiny_reward_model.ref.key}
    sft = pipeline.run(run_config("algorithm=none", *small))
    assert sft["benchmarks"]["gsm8k"]["dir"] != gsm8k["dir"]
