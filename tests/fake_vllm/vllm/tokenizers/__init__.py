"""vllm.tokenizers.get_tokenizer (vLLM 0.30.0: vllm/tokenizers/registry.py): an HF tokenizer from a name or path."""


def get_tokenizer(tokenizer_name, *args, tokenizer_cls=None, trust_remote_code: bool = False, revision=None,
                  download_dir=None, **kwargs):
    from transformers import AutoTokenizer

    kwargs.pop("tokenizer_mode", None)
    return AutoTokenizer.from_pretrained(tokenizer_name, *args, trust_remote_code=trust_remote_code, revision=revision,
                                         **kwargs)
