"""vllm.outputs.CompletionOutput / RequestOutput (vLLM 0.30.0: vllm/outputs.py), the fields readers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict] | None
    routed_experts: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    lora_request: Any = None
    sampling_mask: Any = None
    spec_decode_metrics: Any = None

    def finished(self) -> bool:
        return self.finish_reason is not None


class RequestOutput:
    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int] | None, prompt_logprobs,
                 outputs: list[CompletionOutput], finished: bool, metrics=None, lora_request=None,
                 encoder_prompt=None, encoder_prompt_token_ids=None, num_cached_tokens=None,
                 num_cache_creation_tokens=None, *, kv_transfer_params=None, ec_transfer_params=None, **kwargs):
        self.request_id, self.prompt, self.prompt_token_ids = request_id, prompt, prompt_token_ids
        self.prompt_logprobs, self.outputs, self.finished = prompt_logprobs, outputs, finished
        self.metrics, self.lora_request, self.num_cached_tokens = metrics, lora_request, num_cached_tokens
