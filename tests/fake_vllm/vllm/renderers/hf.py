"""vllm.renderers.hf.resolve_chat_template (vLLM 0.30.0): the given template, else the tokenizer's own."""


def resolve_chat_template(tokenizer, chat_template, tools, *, model_config):
    return chat_template if chat_template is not None else tokenizer.chat_template
