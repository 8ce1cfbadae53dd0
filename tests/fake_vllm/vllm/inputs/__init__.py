"""vllm.inputs.TokensPrompt (a TypedDict in vLLM 0.30.0: vllm/inputs/__init__.py)."""

from typing import TypedDict


class TokensPrompt(TypedDict, total=False):
    prompt_token_ids: list[int]
    prompt: str
    cache_salt: str
