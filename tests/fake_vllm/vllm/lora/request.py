"""vllm.lora.request.LoRARequest (vLLM 0.30.0), imported by lm-eval's VLLM; LoRA is not faked."""

from dataclasses import dataclass


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""
