"""Table 5's other models: config entries that compose, each in its own chat format."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from conftest import compose
from harness.chat import apply_template
from harness.config.groups import options
from harness.report import grid

CHAT = [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": "7."},
        {"role": "user", "content": "And 5 + 5?"}]


def tokenizer(template: str | None = None) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<s>": 0, "</s>": 1, "?": 2}, "?")),
                                  bos_token="<s>", eos_token="</s>")
    tok.chat_template = template
    return tok


def render(name: str | None, tok=None) -> str:
    tok = tok or tokenizer()
    apply_template(tok, name)
    return tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)


def test_every_model_the_grid_names_is_a_model_entry():
    assert grid.explicit("model", grid.BASE) <= set(options("model"))
    assert {"llama2_chat_13b", "nous_hermes_13b", "vicuna_13b"} <= grid.explicit("model", grid.BASE)


@pytest.mark.parametrize("name, path, template", [
    ("llama2_chat_13b", "meta-llama/Llama-2-13b-chat-hf", None),
    ("nous_hermes_13b", "NousResearch/Nous-Hermes-Llama2-13b", "alpaca"),
    ("vicuna_13b", "lmsys/vicuna-13b-v1.5", "vicuna"),
])
def test_table5_models_compose_with_their_own_chat_format(name, path, template):
    cfg = compose(f"model={name}", "algorithm=none")
    assert (cfg.model.name, cfg.model.path, cfg.model.chat_template) == (name, path, template)


def test_vicuna_format():
    assert render("vicuna") == (
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: What is 3 + 4? ASSISTANT: 7.</s>"
        "USER: And 5 + 5? ASSISTANT:")


def test_alpaca_format():
    assert render("alpaca") == ("<s>### Instruction:\nWhat is 3 + 4?\n\n### Response:\n7.</s>\n\n"
                                "### Instruction:\nAnd 5 + 5?\n\n### Response:\n")


def test_null_template_keeps_the_tokenizers_own_and_needs_one():
    own = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    assert render(None, tokenizer(own)) == "[What is 3 + 4?][7.][And 5 + 5?]"
    with pytest.raises(ValueError, match="no chat template; set model.chat_template to one of .*'alpaca'.*'vicuna'"):
        render(None)
