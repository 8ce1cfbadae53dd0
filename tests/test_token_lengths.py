"""Length filters against token counts done by hand: a word-level tokenizer (one token per word, per run of
punctuation, per special token) under the Tulu chat template, so every expected length below is counted in a comment.
"""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from conftest import compose
from harness.chat import apply_template
from harness.data.preferences import drop_overlength, prepare_preferences
from harness.data.prompts import prepare_prompts
from harness.data.validate import DataError, token_lengths


@pytest.fixture(scope="module")
def words():
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "<s>": 1, "</s>": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+ | [^\w\s]+
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    tok.add_special_tokens({"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>"]})
    apply_template(tok, "tulu")
    return tok


def user(text):
    return [{"role": "user", "content": text}]


def test_hand_counted_lengths_of_rendered_conversations(words):
    prompts = [user("What is 3 + 4?"), user("Name three colors.")]
    # <s> <|user|> What is 3 + 4 ? <|assistant|>  -> 9;  <s> <|user|> Name three colors . <|assistant|>  -> 7
    assert token_lengths(words, prompts, add_generation_prompt=True) == [9, 7]
    # <s> <|user|> What is 3 + 4 ? <|assistant|> Sure ! 3 + 4 = 7 . </s>  -> 18
    pair = user("What is 3 + 4?") + [{"role": "assistant", "content": "Sure! 3 + 4 = 7."}]
    assert token_lengths(words, [pair]) == [18]


def test_prompt_filter_keeps_exactly_the_prompts_within_the_limit(words, tmp_path):
    rows = [{"id": "p9", "source": "t", "messages": user("What is 3 + 4?")},         # 9 tokens
            {"id": "p7", "source": "t", "messages": user("Name three colors.")},     # 7
            {"id": "p8", "source": "t", "messages": user("Name four colors now.")}]  # 8
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose("prompts=tiny", f"prompts.files.train={path}", "prompts.max_prompt_tokens=8",
                  "prompts.max_bad_fraction=1.0").prompts
    kept = prepare_prompts(cfg, tokenizer=words)
    assert sorted(kept.dataset["id"]) == ["p7", "p8"]
    assert kept.report.dropped == {"over_length": 1}


def test_pair_filter_uses_the_longer_side_of_each_pair(words, tmp_path):
    q = "What is 3 + 4?"
    rows = [{"prompt": q, "chosen": user(q) + [{"role": "assistant", "content": "Sure! 3 + 4 = 7."}],  # 18 tokens
             "rejected": user(q) + [{"role": "assistant", "content": "No."}]},                        # 12
            {"prompt": q, "chosen": user(q) + [{"role": "assistant", "content": "It is 7."}],         # 14
             "rejected": user(q) + [{"role": "assistant", "content": "It is 8."}]}]                   # 14
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose(f"dataset.files.train={path}", "dataset.eval_split=null", "dataset.max_bad_fraction=1.0")
    prepared = prepare_preferences(cfg.dataset)
    assert len(prepared.dataset) == 2
    for limit, kept in ((18, 2), (17, 1), (14, 1)):
        out = drop_overlength(prepared, words, limit, max_bad_fraction=1.0)
        assert len(out.dataset) == kept, limit
        assert out.report.dropped.get("over_length", 0) == 2 - kept, limit
    with pytest.raises(DataError, match="max_length=13: the selection yielded no rows"):  # nothing left: never cached
        drop_overlength(prepared, words, 13, max_bad_fraction=1.0)
