"""vllm.logprobs.Logprob (vLLM 0.30.0: vllm/logprobs.py)."""

from dataclasses import dataclass


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None
