"""Token-level conformance: every benchmark prompt family and the DPO, reward-model and PPO inputs encode to the ids
the paper's code produced (tests/golden/*.ids), with a SentencePiece-style Llama tokenizer whatever its `legacy` flag
(tests/llama_sp.py builds the fixture and derives the goldens)."""

from __future__ import annotations

import pytest
from llama_sp import CONVERSATION, EVAL, LEGACY, TRAINING, derived, golden_ids, model_dir, reference, text_golden

from harness.models import ModelRef, load_tokenizer


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict:
    """The fixture loaded as the project loads a model's tokenizer (Tulu template), per `legacy` value."""
    root = tmp_path_factory.mktemp("llama_sp")
    return {legacy: load_tokenizer(ModelRef(str(model_dir(root, legacy))), "tulu") for legacy in LEGACY}


@pytest.fixture(scope="module")
def policies(tokenizers) -> dict:
    """lm-eval's HF model over each tokenizer (a one-layer Llama with the fixture's vocabulary): the encoder every
    benchmark's requests go through."""
    from lm_eval.models.huggingface import HFLM
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=900, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    return {legacy: HFLM(pretrained=model, tokenizer=tok, batch_size=1) for legacy, tok in tokenizers.items()}


@pytest.mark.parametrize("name", [*EVAL, *TRAINING])
def test_token_goldens_are_what_the_reference_produced(name):
    """Each golden names the code it was derived from and equals that code's rule applied to its input (the text
    golden's prompt, or the training conversation) with the fixture loaded as the paper's code loaded it."""
    header, body = golden_ids(name)
    assert {"repo", "commit", "file", "function"} <= set(header), name
    assert body == derived(name), f"tests/golden/{name}.ids is stale: run `python tests/llama_sp.py`"


@pytest.mark.parametrize("legacy", LEGACY)
def test_benchmark_prompts_encode_as_open_instructs(policies, legacy):
    """The text each benchmark sends (the text goldens: `<s>` rendered by the template) becomes open-instruct's ids in
    both of lm-eval's encoders (generation batches, log-likelihood contexts); MMLU's answer letters are its ids."""
    lm = policies[legacy]
    for name in EVAL:
        _, want = golden_ids(name)
        ids = want["ids"] if isinstance(want, dict) else want
        body = text_golden(name)
        assert lm.tok_batch_encode([body])[0][0].tolist() == ids, name
        assert lm.tok_encode(body) == ids, name
        if name.startswith("mmlu"):
            for letter, answer in want["answers"].items():
                context, continuation = lm._encode_pair(body, " " + letter)
                assert (context, continuation) == (ids, [answer]), (name, letter)


@pytest.mark.parametrize("legacy", LEGACY)
def test_dpo_reward_model_and_ppo_inputs_encode_as_easylms(tokenizers, legacy):
    """DPO's sides and their trained span, the reward model's pairs and PPO's query (stripped messages, no BOS) are
    EasyLM's ids."""
    from datasets import Dataset

    from harness.train import dpo_data, ppo, reward

    tok, c = tokenizers[legacy], CONVERSATION
    _, pair = golden_ids("preference_pair")
    for side in ("chosen", "rejected"):
        ids, start = dpo_data.encode_side(tok, c["prompt"] + c[side])
        assert {"ids": ids, "start": start} == pair[side], side
    encoded = reward.encode_pairs(Dataset.from_list([c]), tok)[0]
    assert (encoded["chosen_ids"], encoded["rejected_ids"]) == (pair["chosen"]["ids"], pair["rejected"]["ids"])
    _, ids = ppo.keep_short_prompts(Dataset.from_list([{"prompt": c["prompt"]}]), tok, 1024)
    assert ids == [golden_ids("ppo_prompt")[1]]


def test_transformers_alone_loses_the_reference_tokens(tmp_path):
    """Why harness.chat.sentencepiece_segments exists: loaded by transformers 5 as it is, the fixture puts no `▁` after
    a literal <s> when `legacy` is false or unset, and one `▁` where SentencePiece writes two when it is true."""
    from transformers import AutoTokenizer

    body = text_golden("gsm8k")
    want = golden_ids("gsm8k")[1]
    for legacy in (False, None):
        raw = AutoTokenizer.from_pretrained(model_dir(tmp_path, legacy))
        got = raw(body, add_special_tokens=False)["input_ids"]
        assert got != want and raw.convert_ids_to_tokens(got[:2]) == ["<s>", "<"]
    raw = AutoTokenizer.from_pretrained(model_dir(tmp_path, True))
    assert raw(body, add_special_tokens=False)["input_ids"] == want
    assert raw("<s> Paris", add_special_tokens=False)["input_ids"] != reference().encode("<s> Paris", add_special_tokens=False).ids
    fixed = load_tokenizer(ModelRef(str(model_dir(tmp_path, True))), "tulu")
    assert fixed("<s> Paris", add_special_tokens=False)["input_ids"] == reference().encode("<s> Paris", add_special_tokens=False).ids


def test_other_tokenizers_are_left_as_they_are(tiny_base):
    """The tiny model's byte-level BPE has no SentencePiece prefix: its pipeline is untouched."""
    from transformers import AutoTokenizer

    from harness.chat import sentencepiece_segments

    raw = AutoTokenizer.from_pretrained(tiny_base.path)
    before = raw.backend_tokenizer.to_str()
    assert sentencepiece_segments(raw).backend_tokenizer.to_str() == before
