"""Chat formats. The paper's Tulu 2 format, with exactly one BOS:

    <s><|user|>
    What is 3 + 4?
    <|assistant|>
    3 + 4 = 7.</s>

The template renders BOS itself, so rendered text is tokenized with `add_special_tokens=False` (TRL and lm-eval do;
harness.generation does) and a tokenizer that also adds BOS on its own never doubles it. For a SentencePiece (Llama)
tokenizer that alone is not the reference's token sequence: `sentencepiece_segments` (applied wherever the project
loads a tokenizer) makes the text after `<s>` start with `▁` as it did for open-instruct and EasyLM, whatever the
tokenizer's `legacy` flag (tests/golden/*.ids).
"""

from __future__ import annotations

# How training sequences are built from messages, beyond what any config field says; part of every trained stage's
# key (harness.planning, harness.train.reward_plan), so a stage trained under an earlier rule is never reused.
# "easylm-strip": every message content stripped (EasyLM data.py) and SentencePiece's "▁" after each special token
# (sentencepiece_segments). Change it whenever this module changes what a trainer sees.
ENCODING = "easylm-strip"


TULU_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Vicuna v1.1+ (FastChat's vicuna_v1.1 conversation): a system line, then "USER: ... ASSISTANT: ...</s>" turns.
VICUNA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}"
    "{% else %}{{ 'A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user\\'s questions. ' }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Alpaca without the preamble, as Nous Hermes is trained: "### Instruction:\n...\n\n### Response:\n...</s>".
ALPACA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)

# No chat format: BOS, then the turns' text as it is (an assistant turn is a prefill the model continues). How
# open-instruct evaluates untuned models (scripts/submit_eval_jobs.py drops --use_chat_format for a vanilla_lm); the
# benchmarks' `options.plain` give the plain-text prompt details (e.g. GSM8k's "\nAnswer:" and its "\n" stop).
PLAIN_TEMPLATE = "{{ bos_token }}{% for message in messages %}{{ message['content'] }}{% endfor %}"

TEMPLATES = {"tulu": TULU_TEMPLATE, "vicuna": VICUNA_TEMPLATE, "alpaca": ALPACA_TEMPLATE, "plain": PLAIN_TEMPLATE}


def apply_template(tokenizer, name: str | None) -> None:
    """Force a named template onto `tokenizer` (null keeps the tokenizer's own)."""
    if name is None:
        if not tokenizer.chat_template:
            raise ValueError(f"{tokenizer.name_or_path} has no chat template; set model.chat_template to one of {sorted(TEMPLATES)}")
        return
    if name not in TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; valid: {sorted(TEMPLATES)} or null (the tokenizer's own)")
    tokenizer.chat_template = TEMPLATES[name]


def through_final_eos(text: str, eos_token: str) -> str:
    """A rendered conversation cut right after its final EOS: what follows it (Tulu: a newline) is the template's
    separator before a next turn, not part of the answer. EasyLM strips the text, so its sequences end at EOS
    (hamishivi/EasyLM@dbf2212 EasyLM/data.py) and its reward models read their score there."""
    end = text.rfind(eos_token)
    return text if end < 0 else text[: end + len(eos_token)]


def stripped(messages: list[dict]) -> list[dict]:
    """Every message's content without surrounding whitespace: how EasyLM built every training input (DPO and reward
    model pairs, PPO prompts: hamishivi/EasyLM@dbf2212 EasyLM/data.py `_concat_messages`, `_concat_messages_to_prompt`).
    Evaluation prompts are not stripped (open-instruct strips only assistant turns, and its prompts have none)."""
    return [{**m, "content": m["content"].strip()} for m in messages]


def sentencepiece_segments(tokenizer):
    """Tokenize every text segment between special tokens as SentencePiece did, with `▁` in front: the reference's
    token sequence. EasyLM (llama_train_ppo.py: a PreTrainedTokenizerFast over Tulu 2's tokenizer.json, whose normalizer
    prepends `▁` to each segment) encoded "<s><|user|>..." as [<s>, "▁<|", ...] and "</s>\n<|user|>" as
    [</s>, "▁", "\n", ...]; open-instruct's prompts started [<s>, "▁<", ...] (its tokenizer added BOS before the text).
    transformers 5 rebuilds a LlamaTokenizer with a Metaspace pre-tokenizer instead: with `legacy` false or unset
    (prepend_scheme "first") no `▁` follows a special token, and even with `legacy` true a segment starting with a space
    gets one `▁` where SentencePiece writes two. Such a tokenizer gets the reference's pipeline back (normalizer: `▁`
    prepended, spaces replaced; no pre-tokenizer); any other tokenizer (byte-level BPE, an explicit
    add_prefix_space=false) is left as it is. Returns `tokenizer`."""
    from tokenizers import normalizers, pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if (not isinstance(pre, pre_tokenizers.Metaspace) or backend.normalizer is not None or pre.split
            or pre.prepend_scheme == "never"):
        return tokenizer
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(pre.replacement),
                                               normalizers.Replace(" ", pre.replacement)])
    backend.pre_tokenizer = None
    return tokenizer
