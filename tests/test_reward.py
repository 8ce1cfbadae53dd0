"""Reward models: learning a toy preference, scoring paths for same/different tokenizers, stage identity, checks."""

import pytest
from conftest import compose

from harness import data
from harness.checks import check
from harness.config.errors import ConfigError
from harness.models import ModelRef
from harness.records.stages import Stage
from harness.train import reward
from harness.train.reward import RewardScorer, pair_margins


@pytest.fixture(scope="module")
def scorer(tiny_reward_model):
    return RewardScorer.load(tiny_reward_model.ref, tiny_reward_model.chat_template)


def test_reward_model_learns_the_toy_preference_on_heldout_pairs(tiny_reward_model, scorer):
    heldout = data.load_preferences(compose("dataset=tiny").dataset, split="test")
    margins = pair_margins(scorer, heldout)
    accuracy = float((margins > 0).float().mean())
    assert len(margins) == 64
    assert accuracy >= 0.9
    # the recorded held-out accuracy is the saved model's, each side scored by transformers' own forward pass
    import torch

    def plain_score(conversation) -> float:
        ids = scorer.tok(scorer.render(conversation), add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return float(scorer.model(input_ids=ids.to(scorer.model.device)).logits[0, 0])

    wins = [plain_score(r["prompt"] + r["chosen"]) > plain_score(r["prompt"] + r["rejected"]) for r in heldout]
    assert tiny_reward_model.info["heldout_accuracy"] == pytest.approx(sum(wins) / len(wins))
    # the recipe's schedule: linear decay from the peak to the floor (final_learning_rate), not to 0
    rm = compose("reward_model=tiny").reward_model
    lrs = [h["learning_rate"] for h in _history(tiny_reward_model) if "learning_rate" in h]
    assert max(lrs) == pytest.approx(rm.learning_rate, rel=0.2)
    assert lrs[-1] == pytest.approx(rm.final_learning_rate, rel=0.5) and lrs[-1] > 0


def _history(rm):
    import json
    from pathlib import Path

    return json.loads((Path(rm.info["dir"]) / "log_history.json").read_text())


def test_a_score_is_the_score_head_at_the_eos_token_of_a_plain_forward_pass(random_tiny):
    """RewardScorer reads the score head at each conversation's last token, its EOS: transformers' own
    sequence-classification forward (which pools at the last non-pad token; the tiny tokenizer's pad is not EOS) gives
    the same number, with or without padding in the batch. Random weights score every position differently, so the
    token before EOS would not do."""
    import torch

    _, rm = random_tiny
    scorer = RewardScorer.load(rm.ref, rm.chat_template)
    user = {"role": "user", "content": "What is 3 + 4?"}
    conversations = [[user, {"role": "assistant", "content": "7."}],
                     [user, {"role": "assistant", "content": "Sure! 3 + 4 = 7, since 3 + 3 = 6."}]]
    scores = scorer.score_conversations(conversations)  # one batch: the shorter one is padded
    for conversation, score in zip(conversations, scores):
        ids = scorer.tok(scorer.render(conversation), add_special_tokens=False, return_tensors="pt")["input_ids"]
        assert ids[0, -1] == scorer.tok.eos_token_id != scorer.tok.pad_token_id
        with torch.no_grad():
            at_eos = float(scorer.model(input_ids=ids).logits[0, 0])
            before_eos = float(scorer.model(input_ids=ids[:, :-1]).logits[0, 0])
        assert float(score) == pytest.approx(at_eos, abs=1e-5)
        assert float(score) != pytest.approx(before_eos, abs=1e-3)


def test_same_tokenizer_scores_policy_ids_exactly_as_the_rendered_conversation(scorer):
    tok = scorer.tok
    prompt = [{"role": "user", "content": "What is 3 + 4?"}]
    query = tok(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False), add_special_tokens=False)["input_ids"]
    answer = tok("Sure! 3 + 4 = 7.", add_special_tokens=False)["input_ids"]
    assert scorer.shares_tokenizer(tok)
    ended = scorer.score_responses([prompt], [query], [answer + [tok.eos_token_id]], [True], tok)
    rendered = scorer.score_conversations([prompt + [{"role": "assistant", "content": "Sure! 3 + 4 = 7."}]])
    assert ended.item() == pytest.approx(rendered.item(), abs=1e-5)
    # an unfinished response is scored without an end of turn it never wrote
    unfinished = scorer.score_responses([prompt], [query], [answer], [False], tok)
    text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False) + "Sure! 3 + 4 = 7."
    assert unfinished.item() == pytest.approx(scorer.score_texts([text]).item(), abs=1e-5)
    assert unfinished.item() != pytest.approx(ended.item(), abs=1e-3)


def test_another_tokenizer_is_retokenised_for_the_reward_model(scorer):
    from harness.chat import apply_template
    from harness.config.schema import TinyModelSpec
    from harness.tiny.model import build_tokenizer

    other = build_tokenizer(TinyModelSpec(vocab_size=400))  # a policy with a different vocabulary
    apply_template(other, "tulu")
    assert not scorer.shares_tokenizer(other)
    prompt = [{"role": "user", "content": "Name 2 colors."}]
    reply = "Sure! Here are 2 colors: red, blue."
    query = other(other.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False), add_special_tokens=False)["input_ids"]
    response = other(reply, add_special_tokens=False)["input_ids"] + [other.eos_token_id]
    got = scorer.score_responses([prompt], [query], [response], [True], other)
    want = scorer.score_conversations([prompt + [{"role": "assistant", "content": reply}]])
    assert got.item() == pytest.approx(want.item(), abs=1e-5)


def _key(*overrides):
    cfg = compose(*overrides)
    p = reward.plan(cfg, table2=cfg.algorithm.get("table2", False), load=False)
    base = ModelRef(p.model.path, p.model.revision)
    return Stage("reward_model", reward.stage_spec(p, base), ".").key


def test_table2_reward_model_is_the_named_reward_model_stage_when_recipes_match():
    named = _key("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b")
    table2 = _key("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=ppo", "algorithm.table2=true", "reward_model=none")
    assert named == table2
    assert named != _key("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "reward_model.learning_rate=2e-5")
    assert named != _key("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b")  # another base model
    # the entry's name and label never enter the key
    assert named == _key("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_13b", "reward_model.label=x")


def test_reward_model_configs_compose_with_their_base_and_data():
    for name, base, dataset, params in [("uf_13b", "tulu2_13b", "ultrafeedback_fg", 13), ("mix_13b", "tulu2_13b", "mix", 13),
                                        ("uf_70b", "tulu2_70b", "ultrafeedback_fg", 70), ("mix_70b", "tulu2_70b", "mix", 70)]:
        rm = compose("algorithm=ppo", f"reward_model={name}").reward_model
        assert (rm.base_model, rm.dataset, rm.params_b) == (base, dataset, params)
        assert (rm.learning_rate, rm.final_learning_rate, rm.effective_batch_size, rm.epochs) == (1e-5, 1e-6, 512, 1)
    assert compose("model=tulu2_70b").model.params_b == 70
    # the 70B reward models lower PPO's KL coefficient (conf/algorithm_rm)
    assert compose("algorithm=ppo", "reward_model=uf_70b").algorithm.kl_coef == 0.0325
    assert compose("algorithm=ppo", "reward_model=mix_70b").algorithm.kl_coef == 0.0325
    assert compose("algorithm=ppo", "reward_model=uf_13b").algorithm.kl_coef == 0.05


def test_bad_reward_model_configs_fail_with_the_valid_choices():
    with pytest.raises(ConfigError, match=r"reward_model=none.*\['mix_13b'"):
        check(compose("algorithm=ppo", "reward_model=none"))
    with pytest.raises(ConfigError, match=r"reward_model=path needs reward_model.path"):
        check(compose("algorithm=ppo", "reward_model=path"))
    with pytest.raises(ConfigError, match=r"dataset='nope' is not an entry.*'tiny'"):
        reward.plan(compose("algorithm=ppo", "reward_model=tiny", "reward_model.dataset=nope"), load=False)
    with pytest.raises(ConfigError, match=r"neither `path`.*nor `dataset`"):
        reward.plan(compose("algorithm=ppo", "reward_model=tiny", "reward_model.dataset=null"), load=False)


def test_reward_model_trains_and_reads_its_score_at_the_final_eos(scorer):
    """As the paper's reward models (EasyLM strips the text): sequences end at EOS, not the template's newline."""
    from datasets import Dataset

    tok = scorer.tok
    prompt = [{"role": "user", "content": "What is 3 + 4?"}]
    pair = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "7."}],
            "rejected": [{"role": "assistant", "content": "8."}]}
    encoded = reward.encode_pairs(Dataset.from_list([pair]), tok)[0]
    for side in ("chosen", "rejected"):
        ids = encoded[f"{side}_ids"]
        assert ids[-1] == tok.eos_token_id and tok.decode(ids).endswith(pair[side][0]["content"] + tok.eos_token)
        # every scorer reads the score where training read it
        assert scorer.score_conversations([prompt + pair[side]]).item() == pytest.approx(scorer.score_ids([ids]).item(), abs=1e-6)
