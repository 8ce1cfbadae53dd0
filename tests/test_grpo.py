"""GRPO through TRL with the tiny reward model, and the verifiable GSM8k reward."""

import json
import random

import pytest
from conftest import compose
from datasets import Dataset
from direction import gsm8k_accuracy, max_weight_change

from harness import data
from harness.data.preferences import asset_path
from harness.config.errors import ConfigError
from harness.models import ModelRef
from harness.train import grpo
from harness.train.reward import RewardScorer, policy_score

GSM8K_FIXTURE = "benchmarks/gsm8k/test.jsonl"


def assistant(text):
    return [{"role": "assistant", "content": text}]


def test_gsm8k_reward_scores_right_and_wrong_answers():
    completions = [
        assistant("Ann starts with 3 apples and buys 4 more, so 3 + 4 = 7. The answer is 7."),
        assistant("3 + 4 = 7, so the answer is 8."),  # the final number counts, not the first
        assistant("I am not sure."),
        assistant("The total is 1,234."),
        assistant("The answer is 7.0"),
        assistant("It drops to -3."),
        assistant("The answer is 70."),
    ]
    gold = [7, 7, 7, 1234, 7, -3, 7]
    assert grpo.gsm8k_reward(completions, gold) == [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert grpo.gsm8k_reward(["so it is 12"], [12.0]) == [1.0]  # plain-text completions too


def test_final_number_reads_decimals_without_a_leading_zero_and_lists():
    assert grpo.final_number("Each costs $.5") == 0.5
    assert grpo.final_number("The answer is -.25.") == -0.25
    assert grpo.final_number("The numbers are 1,2,3") == 3  # a list, not one hundred and twenty-three
    assert grpo.final_number("It is 12,34") == 34
    assert grpo.final_number("It costs $1,080.50 in total.") == 1080.5
    assert grpo.final_number("1,234,567 people") == 1234567


def test_gold_answers_come_from_gsm8k_solutions():
    assert grpo.gold_answer("He reads 5 * 6 = <<5*6=30>>30 pages.\n#### 30") == 30
    assert grpo.gold_answer("... #### 1,000") == 1000
    with pytest.raises(ValueError, match="without '#### <answer>'"):
        grpo.gold_answer("30 pages")


def _gsm8k_prompts(prefix=""):
    rows = [json.loads(line) for line in asset_path(GSM8K_FIXTURE).read_text().splitlines()]
    prompts = Dataset.from_list([{"prompt": [{"role": "user", "content": prefix + r["question"]}], "id": str(i), "source": "gsm8k"}
                                 for i, r in enumerate(rows)])
    return prompts, rows


def test_answers_are_joined_to_prompts_by_question_text():
    prompts, rows = _gsm8k_prompts("Solve step by step.\n")  # a prompt that wraps the question still matches
    joined = grpo.attach_answers(prompts, rows)
    assert joined["answer"] == [grpo.gold_answer(r["answer"]) for r in rows]
    stray = Dataset.from_list([{"prompt": [{"role": "user", "content": "Name 3 colors."}], "id": "x", "source": "tiny"}])
    with pytest.raises(ConfigError, match="1 of 1 prompts match no GSM8k problem.*Name 3 colors"):
        grpo.attach_answers(stray, rows)
    # a run pairing the GSM8k reward with other prompts fails while loading its inputs, before any stage
    from harness import pipeline

    cfg = compose("algorithm=grpo", "algorithm.reward=gsm8k", f"algorithm.answers_file={GSM8K_FIXTURE}")
    with pytest.raises(ConfigError, match="128 of 128 prompts match no GSM8k problem"):
        pipeline.load_training_data(cfg)


def test_grpo_with_the_reward_model_raises_its_score(tiny_base, tiny_reward_model, tmp_path):
    cfg = compose("algorithm=grpo", "reward_model=tiny")
    assert cfg.algorithm.beta > 0
    prompts = data.load_prompts(cfg.prompts)
    result = grpo.train(cfg.algorithm, tiny_base, cfg.model, prompts, tiny_reward_model, tmp_path, "none", "test",
                        cfg.seed, cfg.prompts.max_prompt_tokens)
    assert result["global_step"] == cfg.algorithm.max_steps == 12
    history = json.loads((tmp_path / "log_history.json").read_text())
    assert any(h.get("kl", 0) > 0 for h in history)  # the KL term against the SFT reference is live
    scorer = RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)
    heldout = [r["prompt"] for r in prompts][:64]
    before = policy_score(tiny_base, "tulu", heldout, scorer)
    after = policy_score(ModelRef(str(tmp_path / "model")), "tulu", heldout, scorer)
    assert after > before + 0.5


def test_grpo_with_the_verifiable_gsm8k_reward_raises_accuracy(tiny_base, tmp_path):
    """Small sums in GSM8k's format (gold after '####', joined to the prompts by question text): the tiny SFT model
    gets a few right, so the 0/1 reward is not always 0, and GRPO makes the saved policy right more often."""
    rng = random.Random(0)
    pairs = [(rng.randint(1, 5), rng.randint(1, 5)) for _ in range(64)]
    problems = [{"question": f"What is {a} + {b}?", "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"}
                for a, b in pairs]
    answers_file = tmp_path / "problems.jsonl"
    answers_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    cfg = compose("algorithm=grpo", "algorithm.reward=gsm8k", f"algorithm.answers_file={answers_file}",
                  "algorithm.max_steps=24", "algorithm.num_generations=8", "algorithm.temperature=1.0")
    prompts = Dataset.from_list([{"prompt": [{"role": "user", "content": p["question"]}], "id": str(i), "source": "gsm8k"}
                                 for i, p in enumerate(problems)])
    out = tmp_path / "grpo"
    result = grpo.train(cfg.algorithm, tiny_base, cfg.model, prompts, None, out, "none", "test", cfg.seed, 1024)
    assert result["global_step"] == 24
    rewards = [h["rewards/gsm8k_reward/mean"] for h in json.loads((out / "log_history.json").read_text())
               if "rewards/gsm8k_reward/mean" in h]
    assert len(rewards) == 24 and max(rewards) > 0  # some sampled answers were right: the reward carried signal
    assert max_weight_change(out / "model", tiny_base.path) > 0
    questions, gold = [p["question"] for p in problems], [a + b for a, b in pairs]
    before = gsm8k_accuracy(tiny_base.path, "tulu", questions, gold)
    after = gsm8k_accuracy(out / "model", "tulu", questions, gold)
    assert after > before + 0.05, (before, after)


def test_reward_model_reward_applies_ppos_eos_trick(tiny_reward_model):
    from harness.models import load_tokenizer

    scorer = RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)
    eos = load_tokenizer(tiny_reward_model.ref, "tulu").eos_token_id
    prompts = [[{"role": "user", "content": "What is 3 + 4?"}]] * 2
    completions = [assistant("It is 7."), assistant("It is 7.")]
    reward = grpo.RewardModelReward(scorer, eos, -10.0)
    finished, unfinished = reward(prompts, completions, [[5, 6, eos], [5, 6, 7]])
    # the same conversation scored alone: equal up to float rounding (a batch of 2 and of 1 take other kernels)
    assert finished == pytest.approx(float(scorer.score_conversations([prompts[0] + completions[0]])[0]), abs=1e-5)
    assert unfinished == -10.0
    assert grpo.RewardModelReward(scorer, eos, None)(prompts, completions, [[5, 6, 7], [5]]) == pytest.approx([finished, finished], abs=1e-5)


def test_grpo_budget_is_ppos():
    """As many completions and optimiser steps as PPO's one epoch, one response per prompt, 64 a step (paper)."""
    ppo_alg, grpo_alg = (compose(f"algorithm={a}", "model=tulu2_13b").algorithm for a in ("ppo", "grpo"))
    prompts = 60_908  # any prompt count: the ratios are what matter
    ppo_samples = ppo_alg.epochs * prompts
    grpo_samples = grpo_alg.epochs * prompts * grpo_alg.num_generations
    assert grpo_samples == ppo_samples
    assert grpo_samples / grpo_alg.effective_batch_size == ppo_samples / ppo_alg.effective_batch_size
